//! Typed settings.
//!
//! The command line (and its environment equivalents) is parsed exactly once, in [`crate::cli`], into
//! the structs below. Everything deeper receives these values; no other module reads the environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use url::Url;

/// Where Sluice keeps its state.
#[derive(Debug, Clone)]
pub enum DatabaseTarget {
    /// A private cluster under the data directory, started and stopped by Sluice.
    Embedded(EmbeddedSettings),
    /// Any PostgreSQL server reachable through `DATABASE_URL`; Sluice starts nothing.
    External(Box<DatabaseUrl>),
}

/// How to run the private cluster.
#[derive(Debug, Clone)]
pub struct EmbeddedSettings {
    /// `<data-dir>`: holds `pgdata/`, `run/` (the socket) and later Sluice's own files.
    pub data_dir: PathBuf,
    /// Directory with `initdb` and `postgres`, when the operator names one (`SLUICE_PG_BIN`).
    pub pg_bin: Option<PathBuf>,
    /// The system user PostgreSQL runs as when Sluice itself runs as root.
    pub pg_user: String,
}

/// A PostgreSQL connection URL. Its `Debug` and `Display` hide the password.
#[derive(Clone)]
pub struct DatabaseUrl {
    options: PgConnectOptions,
    redacted: String,
}

impl DatabaseUrl {
    /// Connection options for sqlx.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.options.clone()
    }
}

impl From<PgConnectOptions> for DatabaseUrl {
    /// Wraps options built in code (the test harness, an attached embedded cluster).
    fn from(options: PgConnectOptions) -> Self {
        let host = options.get_socket().map_or_else(
            || options.get_host().to_string(),
            |socket| socket.display().to_string(),
        );
        let redacted = format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            host,
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        Self { options, redacted }
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "the scheme must be postgres:// or postgresql://, not {}://",
                url.scheme()
            ));
        }
        let options = PgConnectOptions::from_str(raw)
            .map_err(|_| "not a valid PostgreSQL connection URL".to_string())?;
        let mut shown = url.clone();
        if shown.password().is_some() {
            // set_password only fails for URLs that cannot carry credentials, which postgres:// can.
            let _ = shown.set_password(Some("****"));
        }
        Ok(Self {
            options,
            redacted: shown.to_string(),
        })
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// The address users reach Sluice at (scheme, host, port, optional path prefix). Decides cookie
/// names and HSTS later, and is used to build absolute links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(Url);

impl PublicUrl {
    /// The public URL a server bound to `addr` has when nobody says otherwise.
    pub fn for_bind_address(addr: SocketAddr) -> Self {
        // An http URL built from a socket address always parses.
        Self(Url::parse(&format!("http://{addr}/")).expect("socket address forms a valid URL"))
    }

    /// Whether browsers reach Sluice over TLS.
    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }

    /// `scheme://host[:port]`, as browsers send it in `Origin`.
    pub fn origin(&self) -> String {
        self.0.origin().ascii_serialization()
    }

    /// The URL as text, always ending in `/`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl FromStr for PublicUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("the scheme must be http:// or https://".into());
        }
        if url.host().is_none() {
            return Err("the URL needs a host".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("the URL must not have a query or fragment".into());
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Self(url))
    }
}

/// The largest request body accepted, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(usize);

impl BodyLimit {
    /// 1 MiB.
    pub const DEFAULT: BodyLimit = BodyLimit(1024 * 1024);
    const MIN: usize = 1024;
    const MAX: usize = 1024 * 1024 * 1024;

    /// The limit in bytes.
    pub fn bytes(self) -> usize {
        self.0
    }
}

impl FromStr for BodyLimit {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bytes: usize = raw
            .parse()
            .map_err(|_| format!("expected a number of bytes, got {raw:?}"))?;
        if !(Self::MIN..=Self::MAX).contains(&bytes) {
            return Err(format!(
                "must be between {} and {} bytes",
                Self::MIN,
                Self::MAX
            ));
        }
        Ok(Self(bytes))
    }
}

/// The number of job workers this process runs (0 to 256; 0: web only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerCount(u16);

impl WorkerCount {
    const MAX: u16 = 256;

    /// The count.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl Default for WorkerCount {
    fn default() -> Self {
        Self(4)
    }
}

impl FromStr for WorkerCount {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let n: u16 = raw
            .parse()
            .map_err(|_| format!("expected a whole number, got {raw:?}"))?;
        if n <= Self::MAX {
            Ok(Self(n))
        } else {
            Err(format!("must be between 0 and {}", Self::MAX))
        }
    }
}

/// Everything `sluice serve` needs.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub bind: SocketAddr,
    /// When unset: `http://<the bound address>/`.
    pub public_url: Option<PublicUrl>,
    /// Reverse proxies whose `X-Forwarded-For` entries are believed (none: the peer address is
    /// the client's).
    pub trusted_proxies: TrustedProxies,
    /// Who may read `/metrics` without a token (by client address).
    pub metrics_allow: Vec<ProxyCidr>,
    pub session_idle_minutes: u32,
    pub session_lifetime_hours: u32,
    /// Where `master.key` lives (the data directory, whatever the database).
    pub data_dir: std::path::PathBuf,
    /// `SLUICE_MASTER_KEY`, when set (base64 of 32 bytes); else `<data-dir>/master.key`.
    pub master_key: Option<MasterKeyText>,
    /// Days until a new API token expires when its creator does not choose (`None`: never).
    pub token_default_expiry_days: Option<i64>,
    pub database: DatabaseTarget,
    pub workers: WorkerCount,
    /// The user build commands run as when Sluice runs as root.
    pub runner_user: String,
    /// The deployment groups the server's own workers' host is in.
    pub labels: crate::workers::labels::Labels,
    /// Where the server's own workers' deploys go (TargetDirectory taken inside it).
    pub deploy_root: Option<std::path::PathBuf>,
    /// How often polled sources are asked for changes.
    pub poll_interval_secs: u64,
    /// Webhook actions may call loopback and private addresses.
    pub webhook_allow_private: bool,
    pub artifacts: ArtifactSettings,
    pub body_limit: BodyLimit,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_timeout_secs: u64,
}

/// Where artifacts are kept, how large they may be, and for how long.
#[derive(Debug, Clone)]
pub struct ArtifactSettings {
    pub location: ArtifactLocation,
    /// How to reach an S3 location.
    pub s3: S3Options,
    /// A directory on this machine for work files of a store that is not local.
    pub scratch: std::path::PathBuf,
    pub max_bytes: u64,
    pub retention_days: u32,
}

/// Where artifacts are kept: a directory, or an S3-compatible bucket (`s3://bucket/prefix`)
/// reached with [`S3Options`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactLocation {
    Directory(PathBuf),
    S3 {
        bucket: String,
        /// Without leading or trailing `/`; empty for the bucket's root.
        prefix: String,
    },
}

/// The S3 client's settings, as the usual `AWS_*` environment variables name them
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, …). `Debug` shows the names only: values hold secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options(Vec<(String, String)>);

impl S3Options {
    /// Keeps the `AWS_*` entries of `vars` (names as given, e.g. from the environment).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> S3Options {
        let mut kept: Vec<_> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with("AWS_"))
            .collect();
        kept.sort();
        S3Options(kept)
    }

    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl FromStr for ArtifactLocation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(rest) = s.strip_prefix("s3://") else {
            if s.contains("://") {
                return Err("use a directory or s3://bucket/prefix".into());
            }
            if s.trim().is_empty() {
                return Err("the artifact store must not be empty".into());
            }
            return Ok(ArtifactLocation::Directory(PathBuf::from(s)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !valid_bucket {
            return Err(format!(
                "{bucket:?} is not an S3 bucket name (3-63 lowercase letters, digits, '-' and '.')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|part| part == "." || part == ".." || (part.is_empty() && !prefix.is_empty()))
            || prefix.chars().any(char::is_control)
        {
            return Err(format!("{prefix:?} is not a usable key prefix"));
        }
        Ok(ArtifactLocation::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl fmt::Display for ArtifactLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactLocation::Directory(dir) => write!(f, "{}", dir.display()),
            ArtifactLocation::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            ArtifactLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Everything `sluice worker` needs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Where `master.key` is read from when `SLUICE_MASTER_KEY` is not set.
    pub data_dir: std::path::PathBuf,
    pub master_key: Option<MasterKeyText>,
    pub database: DatabaseTarget,
    /// At least one.
    pub workers: WorkerCount,
    pub runner_user: String,
    /// The deployment groups this host is in.
    pub labels: crate::workers::labels::Labels,
    /// Where this worker's deploys go (TargetDirectory taken inside it).
    pub deploy_root: Option<std::path::PathBuf>,
    /// How often polled sources are asked for changes (when this process leads).
    pub poll_interval_secs: u64,
    /// Webhook actions may call loopback and private addresses.
    pub webhook_allow_private: bool,
    /// The same store every server and worker uses.
    pub artifacts: ArtifactSettings,
    /// How long a claimed job's lease lasts without renewal.
    pub lease_seconds: u32,
    /// How long running actions may take to finish after a stop signal.
    pub shutdown_timeout_secs: u64,
}

/// The master key as given in the environment. `Debug` shows nothing of it.
#[derive(Clone)]
pub struct MasterKeyText(String);

impl MasterKeyText {
    pub fn new(text: String) -> Self {
        Self(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MasterKeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKeyText(****)")
    }
}

/// An address range in CIDR notation (`10.0.0.0/8`, `::1/128`; a bare address is a range of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyCidr {
    network: std::net::IpAddr,
    prefix: u8,
}

impl ProxyCidr {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.network, canonical_ip(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) compare as the IPv4 address they carry.
fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for ProxyCidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not an address range like 10.0.0.0/8 or ::1/128");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let network = canonical_ip(addr.parse::<std::net::IpAddr>().map_err(|_| bad())?);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Self { network, prefix })
    }
}

/// The reverse proxies in front of Sluice, by address range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ProxyCidr>);

impl TrustedProxies {
    pub fn new(ranges: Vec<ProxyCidr>) -> Self {
        Self(ranges)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: std::net::IpAddr) -> bool {
        self.0.iter().any(|r| r.contains(ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the right-most
    /// `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left were
    /// written by the client and prove nothing). `forwarded` is every `X-Forwarded-For` header
    /// value, in order.
    pub fn client_address(&self, peer: std::net::IpAddr, forwarded: &[&str]) -> std::net::IpAddr {
        let peer = canonical_ip(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for entry in forwarded.iter().rev().flat_map(|header| header.rsplit(',')) {
            let entry = entry.trim();
            // An entry that is not an address is not a proxy's work: stop at the last good hop.
            let Ok(ip) = entry
                .parse::<std::net::IpAddr>()
                .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()))
            else {
                break;
            };
            client = canonical_ip(ip);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(ranges: &[&str]) -> TrustedProxies {
        TrustedProxies::new(ranges.iter().map(|r| r.parse().unwrap()).collect())
    }

    fn ip(text: &str) -> std::net::IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn artifact_locations_parse_to_a_directory_or_a_bucket_and_prefix() {
        let at = |s: &str| s.parse::<ArtifactLocation>();
        assert_eq!(
            at("/srv/artifacts"),
            Ok(ArtifactLocation::Directory("/srv/artifacts".into()))
        );
        assert_eq!(
            at("s3://my-bucket"),
            Ok(ArtifactLocation::S3 {
                bucket: "my-bucket".into(),
                prefix: String::new()
            })
        );
        let nested = at("s3://my.bucket/sluice/prod/").unwrap();
        assert_eq!(
            nested,
            ArtifactLocation::S3 {
                bucket: "my.bucket".into(),
                prefix: "sluice/prod".into()
            }
        );
        assert_eq!(nested.to_string(), "s3://my.bucket/sluice/prod");
        for bad in [
            "",
            "https://example.com/x",
            "s3://",
            "s3://ab",
            "s3://Upper",
            "s3://-dash",
            "s3://b_ucket",
            "s3://bucket/a//b",
            "s3://bucket/../x",
            "s3://bucket/a\u{0}b",
        ] {
            assert!(at(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn cidr_ranges_parse_and_match() {
        let r: ProxyCidr = "10.0.0.0/8".parse().unwrap();
        assert!(r.contains(ip("10.1.2.3")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(
            r.contains(ip("::ffff:10.0.0.1")),
            "IPv4-mapped addresses match"
        );
        let one: ProxyCidr = "192.0.2.1".parse().unwrap();
        assert!(one.contains(ip("192.0.2.1")) && !one.contains(ip("192.0.2.2")));
        let v6: ProxyCidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: ProxyCidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "10.0.0/8", "proxy", "::1/129", ""] {
            assert!(bad.parse::<ProxyCidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_address_is_the_right_most_untrusted_hop() {
        let p = proxies(&["10.0.0.0/8"]);
        // Not from a proxy: the header is ignored.
        assert_eq!(
            p.client_address(ip("203.0.113.5"), &["1.2.3.4"]),
            ip("203.0.113.5")
        );
        // From the proxy: the entry it added, not what the client wrote to its left.
        assert_eq!(
            p.client_address(ip("10.0.0.1"), &["6.6.6.6, 203.0.113.7"]),
            ip("203.0.113.7")
        );
        // Several trusted hops are skipped, across header lines.
        assert_eq!(
            p.client_address(ip("10.0.0.1"), &["6.6.6.6, 198.51.100.2", "10.0.0.9"]),
            ip("198.51.100.2")
        );
        // Junk ends the walk at the last good hop.
        assert_eq!(p.client_address(ip("10.0.0.1"), &["junk"]), ip("10.0.0.1"));
        // No header: the proxy itself.
        assert_eq!(p.client_address(ip("10.0.0.1"), &[]), ip("10.0.0.1"));
        // Nothing trusted: always the peer.
        assert_eq!(
            TrustedProxies::default().client_address(ip("10.0.0.1"), &["1.2.3.4"]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_master_key_never_prints() {
        let key = MasterKeyText::new("c2VjcmV0".into());
        assert!(!format!("{key:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn database_url_hides_password() {
        let url: DatabaseUrl = "postgres://app:s3cret@db.example:5432/sluice"
            .parse()
            .unwrap();
        assert_eq!(
            format!("{url}"),
            "postgres://app:****@db.example:5432/sluice"
        );
        assert_eq!(
            format!("{url:?}"),
            "postgres://app:****@db.example:5432/sluice"
        );
    }

    #[test]
    fn database_url_refuses_other_schemes_and_garbage() {
        assert!(
            "mysql://x/y"
                .parse::<DatabaseUrl>()
                .unwrap_err()
                .contains("scheme")
        );
        assert!("not a url".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn public_url_normalises_trailing_slash() {
        let url: PublicUrl = "https://ci.example.com/sluice".parse().unwrap();
        assert_eq!(url.as_str(), "https://ci.example.com/sluice/");
        assert!(url.is_https());
        assert!("ftp://x".parse::<PublicUrl>().is_err());
        assert!("http://x/?a=b".parse::<PublicUrl>().is_err());
    }

    #[test]
    fn public_url_defaults_from_bind_address() {
        let url = PublicUrl::for_bind_address("127.0.0.1:8080".parse().unwrap());
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/");
        assert!(!url.is_https());
    }

    #[test]
    fn worker_count_bounds() {
        assert_eq!("0".parse::<WorkerCount>().unwrap().get(), 0, "web only");
        assert!("257".parse::<WorkerCount>().is_err());
        assert!("-1".parse::<WorkerCount>().is_err());
        assert_eq!("256".parse::<WorkerCount>().unwrap().get(), 256);
    }

    #[test]
    fn body_limit_bounds() {
        assert_eq!(BodyLimit::DEFAULT.bytes(), 1_048_576);
        assert!("10".parse::<BodyLimit>().is_err());
        assert!("1mb".parse::<BodyLimit>().is_err());
        assert_eq!("2048".parse::<BodyLimit>().unwrap().bytes(), 2048);
    }
}
