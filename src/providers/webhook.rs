//! Webhook invoke (`Invoke/Sluice/Webhook/1`, Lambda's role): POSTs a `CodePipeline.job`-shaped
//! JSON to the action's `Url` and does what the endpoint answers.
//!
//! The request: the job (its id is the attempt's id; its data the action's configuration without
//! the secret, the pipeline context, each input artifact as a signed link valid for 15 minutes,
//! and the continuation token when asked again), signed when the action has a `Secret`:
//! `X-Sluice-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` with the
//! `X-Sluice-Timestamp` (Unix seconds) it covers, so an endpoint refuses old or replayed
//! deliveries; `X-Sluice-Delivery` names each request.
//!
//! The answer (2xx, JSON, at most 1 MiB): `{"status": "Succeeded", "outputVariables": {…},
//! "summary": …}`, `{"status": "InProgress", "continuationToken": …}` (asked again after a
//! back-off, until it ends or 24 hours pass) or `{"status": "Failed", "summary": …}`. Network
//! errors, 429 and 5xx are tried again with exponential back-off and full jitter; other statuses
//! fail the action; redirects are never followed. Names that resolve to loopback, private,
//! link-local or other non-public addresses are refused unless the operator allows them
//! (`--webhook-allow-private`): whoever edits a pipeline must not make the server call the
//! services beside it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Context, Output};

/// The largest answer read.
pub const ANSWER_LIMIT: usize = 1 << 20;
/// Tries of one request before a transient failure fails the action.
pub const TRIES: u32 = 5;
/// How long an endpoint may keep answering InProgress.
pub const IN_PROGRESS_CAP: Duration = Duration::from_secs(24 * 3600);
/// At most this many output variables, with names and values this long.
const MAX_VARIABLES: usize = 100;
const MAX_VARIABLE_NAME: usize = 128;
const MAX_VARIABLE_VALUE: usize = 1000;

/// The HTTP client webhooks are called with (shared by every action of the process).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    allow_private: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(allow_private: bool) -> Client {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(Guarded { allow_private }))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("Sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Client {
            http,
            allow_private,
        }
    }
}

/// Whether an address is on the public internet: not loopback, private (RFC 1918, unique
/// local), link-local (cloud metadata lives there), shared (CGNAT), unspecified, broadcast,
/// multicast, documentation or reserved; IPv4 inside IPv6 is judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                || (first == 0x0064 && v6.segments()[1] == 0xff9b)
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0])
        }
    }
}

/// Resolves names, keeping only the addresses a webhook may reach: the connection goes to an
/// address checked here, so a name cannot change its answer between the check and the call.
struct Guarded {
    allow_private: bool,
}

#[derive(Debug)]
struct NotPublic(String);

impl std::fmt::Display for NotPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} resolves only to non-public addresses", self.0)
    }
}

impl std::error::Error for NotPublic {}

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(Box::new(NotPublic(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The endpoint's URL, checked: http or https, a host, and (a literal address) a public one
/// unless private ones are allowed.
pub fn endpoint(text: &str, allow_private: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or("the Url must be an http:// or https:// URL")?;
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    if let Some(ip) = literal
        && !allow_private
        && !is_public(ip)
    {
        return Err(format!(
            "the Url's address {ip} is not public; webhooks may call private or loopback addresses only on a server started with --webhook-allow-private"
        ));
    }
    Ok(url)
}

/// `sha256=<hex>` of the HMAC-SHA256 of `<timestamp>.<body>` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256=");
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// What the endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Succeeded {
        variables: BTreeMap<String, String>,
        summary: Option<String>,
    },
    InProgress {
        token: String,
    },
    Failed {
        summary: Option<String>,
    },
}

/// Reads a 2xx answer's body.
pub fn parse_answer(body: &[u8]) -> Result<Answer, String> {
    let shape = "the endpoint's answer must be JSON: {\"status\": \"Succeeded\" | \"InProgress\" | \"Failed\", …}";
    let value: Value = serde_json::from_slice(body).map_err(|_| shape.to_string())?;
    let summary = match value.get("summary") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.chars().take(2048).collect()),
        Some(_) => return Err("the answer's summary must be a string".into()),
    };
    match value.get("status").and_then(Value::as_str) {
        Some("Succeeded") => {
            let mut variables = BTreeMap::new();
            match value.get("outputVariables") {
                None | Some(Value::Null) => {}
                Some(Value::Object(map)) => {
                    if map.len() > MAX_VARIABLES {
                        return Err(format!(
                            "the answer has {} output variables; at most {MAX_VARIABLES}",
                            map.len()
                        ));
                    }
                    for (name, v) in map {
                        let good_name = (1..=MAX_VARIABLE_NAME).contains(&name.chars().count())
                            && name
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || "_-@.".contains(c));
                        if !good_name {
                            return Err(format!(
                                "the output variable name {:?} is not one (letters, digits, _ - @ ., up to {MAX_VARIABLE_NAME})",
                                name.chars().take(MAX_VARIABLE_NAME).collect::<String>()
                            ));
                        }
                        let Some(text) = v.as_str() else {
                            return Err(format!("the output variable {name} must be a string"));
                        };
                        if text.chars().count() > MAX_VARIABLE_VALUE {
                            return Err(format!(
                                "the output variable {name} is longer than {MAX_VARIABLE_VALUE} characters"
                            ));
                        }
                        variables.insert(name.clone(), text.to_string());
                    }
                }
                Some(_) => return Err("the answer's outputVariables must be an object".into()),
            }
            Ok(Answer::Succeeded { variables, summary })
        }
        Some("InProgress") => match value.get("continuationToken").and_then(Value::as_str) {
            Some(token) if !token.is_empty() && token.len() <= 2048 => Ok(Answer::InProgress {
                token: token.to_string(),
            }),
            _ => Err(
                "an InProgress answer needs a continuationToken (a string of 1 to 2048 bytes)"
                    .into(),
            ),
        },
        Some("Failed") => Ok(Answer::Failed { summary }),
        _ => Err(shape.to_string()),
    }
}

/// The wait before try `n + 1` of a request (n ≥ 1): full jitter over an exponential ceiling
/// (0.5 s, 1 s, 2 s … at most 30 s), `unit` a random number in [0, 1).
pub fn retry_after(n: u32, unit: f64) -> Duration {
    let ceiling = (0.5 * 2f64.powi(i32::try_from(n.saturating_sub(1)).unwrap_or(30))).min(30.0);
    Duration::from_secs_f64(ceiling * unit.clamp(0.0, 1.0))
}

/// The wait before asking an endpoint that answered InProgress `n` times (n ≥ 1) again: 1 s,
/// 2 s, 4 s … at most 60 s, less up to a fifth by `unit` (in [0, 1)) so callers spread out.
pub fn ask_again_after(n: u32, unit: f64) -> Duration {
    let ceiling = 2f64
        .powi(i32::try_from(n.saturating_sub(1)).unwrap_or(30))
        .min(60.0);
    Duration::from_secs_f64(ceiling * (1.0 - 0.2 * unit.clamp(0.0, 1.0)))
}

fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    // 53 random bits as a fraction.
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// The job the endpoint gets.
fn job(ctx: &Context, continuation: Option<&str>) -> Result<Value, String> {
    let configuration: serde_json::Map<String, Value> = ctx
        .configuration
        .iter()
        .filter(|(k, _)| k.as_str() != "Secret")
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut inputs = Vec::new();
    for (name, address) in &ctx.inputs {
        let links = ctx.artifact_links.as_ref().ok_or(
            "no server's URL is known to link the input artifacts from (start the server with --public-url)",
        )?;
        inputs.push(json!({
            "name": name,
            "revision": null,
            "location": {"type": "Url", "url": links.url(ctx.pipeline_id, address, name)},
        }));
    }
    let mut data = json!({
        "actionConfiguration": {"configuration": configuration},
        "inputArtifacts": inputs,
        "outputArtifacts": [],
        "pipelineContext": {
            "pipelineName": ctx.pipeline_name,
            "stage": {"name": ctx.stage_name},
            "action": {"name": ctx.action.name},
            "pipelineExecutionId": ctx.execution_id,
        },
    });
    if let Some(token) = continuation {
        data["continuationToken"] = json!(token);
    }
    Ok(json!({"CodePipeline.job": {
        "id": ctx.attempt_id,
        "accountId": "000000000000",
        "data": data,
    }}))
}

/// One request's outcome.
enum Sent {
    Answered(Answer),
    /// Worth trying again (a network error, 429, 5xx).
    Transient(String),
    /// Not worth trying again.
    Refused(String),
}

async fn send(client: &Client, url: &url::Url, secret: Option<&str>, body: &[u8]) -> Sent {
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut request = client
        .http
        .post(url.clone())
        .header("Content-Type", "application/json")
        .header("X-Sluice-Timestamp", timestamp.to_string())
        .header("X-Sluice-Delivery", uuid::Uuid::new_v4().to_string())
        .body(body.to_vec());
    if let Some(secret) = secret {
        request = request.header("X-Sluice-Signature", signature(secret, timestamp, body));
    }
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if let Some(np) = s.downcast_ref::<NotPublic>() {
                    return Sent::Refused(format!(
                        "{np}; webhooks may call private or loopback addresses only on a server started with --webhook-allow-private"
                    ));
                }
                source = s.source();
            }
            let what = if e.is_timeout() {
                "it did not answer in time".to_string()
            } else if e.is_connect() {
                "it could not be reached".to_string()
            } else {
                "the request failed".to_string()
            };
            return Sent::Transient(what);
        }
    };
    let status = response.status();
    if status.is_redirection() {
        let to = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("elsewhere")
            .chars()
            .take(200)
            .collect::<String>();
        return Sent::Refused(format!(
            "the endpoint answered {status} to {to}; redirects are not followed: put the final URL in the action"
        ));
    }
    if status.as_u16() == 429 || status.is_server_error() {
        return Sent::Transient(format!("it answered {status}"));
    }
    if !status.is_success() {
        return Sent::Refused(format!("the endpoint answered {status}"));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > ANSWER_LIMIT {
                    return Sent::Refused(format!(
                        "the endpoint's answer is larger than {} KiB",
                        ANSWER_LIMIT / 1024
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return Sent::Transient("its answer was cut off".into()),
        }
    }
    match parse_answer(&body) {
        Ok(answer) => Sent::Answered(answer),
        Err(why) => Sent::Refused(why),
    }
}

pub async fn run(ctx: &Context) -> Result<Output, String> {
    let client = ctx
        .webhooks
        .as_ref()
        .ok_or("this worker cannot call webhooks")?;
    let url = endpoint(
        ctx.configuration
            .get("Url")
            .ok_or("a webhook needs its Url")?,
        client.allow_private,
    )?;
    let secret = ctx.configuration.get("Secret").map(String::as_str);
    let shown = format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    );
    let started = Instant::now();
    let mut continuation: Option<String> = None;
    let mut asked = 0u32;
    loop {
        let body = serde_json::to_vec(&job(ctx, continuation.as_deref())?)
            .map_err(|e| format!("the job cannot be written: {e}"))?;
        let mut tries = 0;
        let answer = loop {
            tries += 1;
            ctx.log.line(&format!(
                "[Sluice] POST {shown}{}{}",
                url.path(),
                if tries > 1 {
                    format!(" (try {tries} of {TRIES})")
                } else {
                    String::new()
                }
            ));
            match send(client, &url, secret, &body).await {
                Sent::Answered(answer) => break answer,
                Sent::Refused(why) => return Err(why),
                Sent::Transient(why) if tries >= TRIES => {
                    return Err(format!(
                        "the endpoint failed {TRIES} times; the last time {why}"
                    ));
                }
                Sent::Transient(why) => {
                    let wait = retry_after(tries, random_unit());
                    ctx.log.line(&format!(
                        "[Sluice] {why}; trying again in {:.1} s",
                        wait.as_secs_f64()
                    ));
                    tokio::time::sleep(wait).await;
                }
            }
        };
        match answer {
            Answer::Succeeded { variables, summary } => {
                ctx.log.line(&format!(
                    "[Sluice] Succeeded{}",
                    if variables.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " with {}",
                            variables.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    }
                ));
                return Ok(Output {
                    summary,
                    variables,
                    ..Output::default()
                });
            }
            Answer::Failed { summary } => {
                return Err(summary.unwrap_or_else(|| "the endpoint answered Failed".into()));
            }
            Answer::InProgress { token } => {
                if started.elapsed() >= IN_PROGRESS_CAP {
                    return Err("the endpoint was still in progress after 24 hours".into());
                }
                asked += 1;
                let wait = ask_again_after(asked, random_unit());
                ctx.log.line(&format!(
                    "[Sluice] InProgress; asking again in {:.1} s",
                    wait.as_secs_f64()
                ));
                continuation = Some(token);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "127.9.9.9",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert!(!is_public(ip(private)), "{private}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(public)), "{public}");
        }
    }

    #[test]
    fn an_endpoint_is_http_and_a_literal_private_address_is_refused_unless_allowed() {
        assert!(endpoint("https://hooks.example.com/x", false).is_ok());
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "example.com",
            "",
        ] {
            assert!(
                endpoint(bad, true)
                    .unwrap_err()
                    .contains("http:// or https://"),
                "{bad}"
            );
        }
        for private in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://169.254.169.254/latest",
            "http://[::ffff:7f00:1]/",
        ] {
            assert!(
                endpoint(private, false)
                    .unwrap_err()
                    .contains("--webhook-allow-private"),
                "{private}"
            );
            assert!(endpoint(private, true).is_ok(), "{private}");
        }
    }

    #[test]
    fn the_signature_is_the_hmac_of_the_timestamp_and_the_body() {
        // HMAC-SHA256("key", "1700000000.{}") computed independently.
        let s = signature("key", 1_700_000_000, b"{}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64, "{s}");
        assert_ne!(s, signature("key", 1_700_000_001, b"{}"));
        assert_ne!(s, signature("other", 1_700_000_000, b"{}"));
        assert_ne!(s, signature("key", 1_700_000_000, b"{ }"));
        assert_eq!(s, signature("key", 1_700_000_000, b"{}"));
    }

    #[test]
    fn answers_are_read_strictly() {
        assert_eq!(
            parse_answer(br#"{"status":"Succeeded","outputVariables":{"Url":"https://x","n-1":"2"},"summary":"ok"}"#),
            Ok(Answer::Succeeded {
                variables: [("Url".into(), "https://x".into()), ("n-1".into(), "2".into())].into(),
                summary: Some("ok".into())
            })
        );
        assert_eq!(
            parse_answer(br#"{"status":"Succeeded"}"#),
            Ok(Answer::Succeeded {
                variables: BTreeMap::new(),
                summary: None
            })
        );
        assert_eq!(
            parse_answer(br#"{"status":"InProgress","continuationToken":"t1"}"#),
            Ok(Answer::InProgress { token: "t1".into() })
        );
        assert_eq!(
            parse_answer(br#"{"status":"Failed","summary":"tests failed"}"#),
            Ok(Answer::Failed {
                summary: Some("tests failed".into())
            })
        );
        for bad in [
            &b"not json"[..],
            br#"{"status":"Done"}"#,
            br#"{"status":"InProgress"}"#,
            br#"{"status":"InProgress","continuationToken":""}"#,
            br#"{"status":"Succeeded","outputVariables":{"a b":"x"}}"#,
            br#"{"status":"Succeeded","outputVariables":{"n":3}}"#,
            br#"{"status":"Succeeded","outputVariables":[]}"#,
            br#"{"status":"Failed","summary":7}"#,
            br#"[]"#,
        ] {
            assert!(
                parse_answer(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let many: serde_json::Map<String, Value> =
            (0..101).map(|i| (format!("v{i}"), json!("x"))).collect();
        let body =
            serde_json::to_vec(&json!({"status": "Succeeded", "outputVariables": many})).unwrap();
        assert!(parse_answer(&body).unwrap_err().contains("at most 100"));
    }

    #[test]
    fn back_offs_grow_to_their_caps_and_jitter_stays_under_them() {
        assert_eq!(retry_after(1, 0.0), Duration::ZERO);
        assert!(retry_after(1, 0.999) < Duration::from_millis(500));
        assert!(retry_after(3, 0.999) < Duration::from_secs(2));
        assert!(retry_after(3, 0.999) > Duration::from_millis(1900));
        assert!(retry_after(40, 0.999) <= Duration::from_secs(30));
        assert_eq!(ask_again_after(1, 0.0), Duration::from_secs(1));
        assert_eq!(ask_again_after(3, 0.0), Duration::from_secs(4));
        assert_eq!(ask_again_after(50, 0.0), Duration::from_secs(60));
        assert!(ask_again_after(50, 0.999) >= Duration::from_secs(48));
    }
}
