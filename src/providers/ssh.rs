//! SSH for Git sources: the public half of a connection's private key (read by `ssh-keygen`,
//! which also tells a key from junk or from one that needs a passphrase), and the files and
//! variables a clone over SSH runs with, so that `ssh` authenticates with that key only and
//! accepts only the server keys the connection lists.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

/// Why a key that needs a passphrase is refused (said by the parser and by `ssh-keygen`'s check).
pub const NEEDS_PASSPHRASE: &str =
    "must not need a passphrase: a clone cannot type one (remove it with ssh-keygen -p)";

/// `ssh-keygen -y` reads a key file in milliseconds; anything longer is stuck.
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes `contents` to a new file only its owner may read.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

/// The public key (`type base64 [comment]`) of an unencrypted private key; why not when ssh
/// cannot read it. The key is on disk (a private temporary file) only while `ssh-keygen` runs.
pub async fn public_key(private_key: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|_| "cannot read the key here".to_string())?;
    let path = dir.path().join("key");
    write_private(&path, private_key).map_err(|_| "cannot read the key here".to_string())?;
    let mut command = Command::new("ssh-keygen");
    command
        .args(["-y", "-P", "", "-f"])
        .arg(&path)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(KEYGEN_TIMEOUT, command.output())
        .await
        .map_err(|_| "reading the key took too long".to_string())?
        .map_err(|_| {
            "this server cannot read SSH keys: install OpenSSH's client (ssh-keygen)".to_string()
        })?;
    let printed = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || printed.is_empty() {
        let why = String::from_utf8_lossy(&output.stderr);
        return Err(if why.contains("passphrase") {
            NEEDS_PASSPHRASE.into()
        } else {
            "is not a private key ssh can read".into()
        });
    }
    Ok(printed)
}

/// The program git runs as `ssh` (`GIT_SSH`): OpenSSH with no configuration but its options,
/// the connection's key as its only identity (no agent), the connection's known hosts as the
/// only ones (a server key not listed ends the clone), no prompts of any kind, and the
/// connection's user (which wins over a user in the URL).
const WRAPPER: &str = "#!/bin/sh\nexec ssh -F /dev/null -i \"$SLUICE_SSH_KEY\" \
-o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
-o StrictHostKeyChecking=yes -o UserKnownHostsFile=\"$SLUICE_SSH_KNOWN_HOSTS\" \
-o GlobalKnownHostsFile=/dev/null -o UpdateHostKeys=no -o PasswordAuthentication=no \
-o KbdInteractiveAuthentication=no -o ConnectTimeout=30 -l \"$SLUICE_SSH_USER\" \"$@\"\n";

/// Writes the key, the known hosts and the wrapper into `home` (git's home for one clone,
/// handed to the build user afterwards) and returns the variables git runs with. The key is
/// in a file of mode 0600 (ssh refuses any other), never in an argument or a variable.
pub fn prepare(
    home: &Path,
    username: &str,
    private_key: &str,
    known_hosts: &str,
) -> std::io::Result<Vec<(&'static str, String)>> {
    let key = home.join("ssh-key");
    let hosts = home.join("known_hosts");
    let wrapper = home.join("ssh");
    write_private(&key, private_key)?;
    std::fs::write(&hosts, known_hosts)?;
    std::fs::write(&wrapper, WRAPPER)?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o700))?;
    Ok(vec![
        ("GIT_SSH", wrapper.display().to_string()),
        ("GIT_SSH_VARIANT", "ssh".to_string()),
        ("SLUICE_SSH_KEY", key.display().to_string()),
        ("SLUICE_SSH_KNOWN_HOSTS", hosts.display().to_string()),
        ("SLUICE_SSH_USER", username.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated_key(dir: &Path, passphrase: &str) -> String {
        let path = dir.join(format!("k{}", passphrase.len()));
        let made = std::process::Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                passphrase,
                "-C",
                "sluice-test",
                "-f",
            ])
            .arg(&path)
            .status()
            .expect("ssh-keygen runs");
        assert!(made.success());
        std::fs::read_to_string(path).unwrap()
    }

    #[tokio::test]
    async fn the_public_half_is_read_and_junk_or_a_passphrase_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = generated_key(dir.path(), "");
        let public = public_key(&key).await.unwrap();
        assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
        let fingerprint = crate::ops::connections::fingerprint(&public).unwrap();
        let shown = std::process::Command::new("ssh-keygen")
            .args(["-l", "-f"])
            .arg(dir.path().join("k0.pub"))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&shown.stdout).contains(&fingerprint),
            "the fingerprint is the one ssh-keygen shows: {fingerprint}"
        );
        let locked = generated_key(dir.path(), "a passphrase");
        assert!(
            public_key(&locked)
                .await
                .unwrap_err()
                .contains("passphrase")
        );
        let junk =
            "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n";
        let err = public_key(junk).await.unwrap_err();
        assert!(
            err.contains("not a private key") && !err.contains("not a key"),
            "{err}"
        );
    }
}
