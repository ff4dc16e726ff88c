//! Account keys on disk: `<home>/keys/<name>.json`, created 0600 and never printed unless
//! the operator asks for the secret explicitly.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ipsat_core::tx::address_of;
use ipsat_core::types::is_valid_name;
use ipsat_core::Address;
use secp256k1::{PublicKey, Secp256k1, SecretKey};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    name: String,
    address: Address,
    secret_key: String,
}

pub struct Key {
    pub name: String,
    pub address: Address,
    pub secret: SecretKey,
}

fn key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Writes a new random key; refuses to overwrite an existing one.
pub fn create(dir: &Path, name: &str) -> Result<Key> {
    let secret = SecretKey::new(&mut secp256k1::rand::thread_rng());
    store(dir, name, secret)
}

/// Writes `secret` under `name`, with mode 0600, refusing to overwrite.
pub fn store(dir: &Path, name: &str, secret: SecretKey) -> Result<Key> {
    if !is_valid_name(name) {
        bail!("key name {name:?} must match [a-z0-9-]{{1,32}}");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let address = address_of(&PublicKey::from_secret_key(
        &Secp256k1::signing_only(),
        &secret,
    ));
    let file = KeyFile {
        name: name.to_owned(),
        address,
        secret_key: hex::encode(secret.secret_bytes()),
    };
    let path = key_path(dir, name);
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    out.write_all(&serde_json::to_vec_pretty(&file)?)?;
    out.sync_all()?;
    Ok(Key {
        name: name.to_owned(),
        address,
        secret,
    })
}

pub fn load(dir: &Path, name: &str) -> Result<Key> {
    if !is_valid_name(name) {
        bail!("key name {name:?} must match [a-z0-9-]{{1,32}}");
    }
    let path = key_path(dir, name);
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "no key {name:?} in {} (see `ipsat keys list`)",
            dir.display()
        )
    })?;
    let file: KeyFile = serde_json::from_slice(&text)
        .with_context(|| format!("key file {} is not valid", path.display()))?;
    let bytes = hex::decode(&file.secret_key)
        .ok()
        .and_then(|b| SecretKey::from_slice(&b).ok())
        .with_context(|| {
            format!(
                "key file {} holds no valid secp256k1 secret",
                path.display()
            )
        })?;
    let address = address_of(&PublicKey::from_secret_key(
        &Secp256k1::signing_only(),
        &bytes,
    ));
    if address != file.address {
        bail!(
            "key file {} names address {} but its secret is for {address}",
            path.display(),
            file.address
        );
    }
    Ok(Key {
        name: file.name,
        address,
        secret: bytes,
    })
}

/// Every key in `dir`, sorted by name.
pub fn list(dir: &Path) -> Result<Vec<Key>> {
    let mut names = Vec::new();
    if dir.exists() {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                    names.push(stem.to_owned());
                }
            }
        }
    }
    names.sort();
    names.iter().map(|name| load(dir, name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn keys_are_private_unique_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let key = create(dir.path(), "alice").unwrap();
        let mode = std::fs::metadata(dir.path().join("alice.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(dir.path(), "alice").unwrap().address, key.address);
        assert!(create(dir.path(), "alice").is_err(), "overwrote a key");
        assert!(create(dir.path(), "../evil").is_err());
        create(dir.path(), "bob").unwrap();
        let names: Vec<_> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        std::fs::write(dir.path().join("bob.json"), b"{\"name\":\"bob\"}").unwrap();
        assert!(load(dir.path(), "bob").is_err());
    }
}
