//! Account keys on disk: `<home>/keys/<name>.json`, created 0600 and never printed unless
//! the operator asks for the secret explicitly.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ipsat_checkpoint::BlsSecretKey;
use ipsat_core::tx::address_of;
use ipsat_core::types::is_valid_name;
use ipsat_core::Address;
use ipsat_p2p::Keypair;
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
    write_private(&key_path(dir, name), &serde_json::to_vec_pretty(&file)?)?;
    Ok(Key {
        name: name.to_owned(),
        address,
        secret,
    })
}

/// Writes a new secret file with mode 0600, refusing to overwrite one.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    out.write_all(bytes)?;
    out.sync_all()?;
    Ok(())
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlsKeyFile {
    public_key: String,
    secret_key: String,
}

/// Creates a BLS checkpoint signing key at `path` (0600), refusing to overwrite one.
pub fn create_bls(path: &Path) -> Result<BlsSecretKey> {
    let mut seed = [0u8; 32];
    secp256k1::rand::RngCore::fill_bytes(&mut secp256k1::rand::thread_rng(), &mut seed);
    let secret = BlsSecretKey::from_seed(&seed).context("deriving a BLS key")?;
    let file = BlsKeyFile {
        public_key: hex::encode(secret.public_key().to_compressed()),
        secret_key: hex::encode(secret.to_bytes()),
    };
    write_private(path, &serde_json::to_vec_pretty(&file)?)?;
    Ok(secret)
}

/// Loads the BLS key at `path`, checking that its public key matches its secret.
pub fn load_bls(path: &Path) -> Result<BlsSecretKey> {
    let text =
        std::fs::read(path).with_context(|| format!("reading BLS key file {}", path.display()))?;
    let file: BlsKeyFile = serde_json::from_slice(&text)
        .with_context(|| format!("BLS key file {} is not valid", path.display()))?;
    let secret = hex::decode(&file.secret_key)
        .ok()
        .and_then(|bytes| BlsSecretKey::from_bytes(&bytes).ok())
        .with_context(|| format!("BLS key file {} holds no valid secret", path.display()))?;
    if hex::encode(secret.public_key().to_compressed()) != file.public_key {
        bail!(
            "BLS key file {} names a public key that is not its secret's",
            path.display()
        );
    }
    Ok(secret)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct P2pKeyFile {
    peer_id: String,
    secret_key: String,
}

/// Creates the node's libp2p identity (ed25519) at `path` (0600), refusing to overwrite one.
pub fn create_p2p(path: &Path) -> Result<Keypair> {
    let mut secret = [0u8; 32];
    secp256k1::rand::RngCore::fill_bytes(&mut secp256k1::rand::thread_rng(), &mut secret);
    let keypair = Keypair::ed25519_from_bytes(secret).context("deriving a libp2p key")?;
    let file = P2pKeyFile {
        peer_id: keypair.public().to_peer_id().to_string(),
        secret_key: hex::encode(secret),
    };
    write_private(path, &serde_json::to_vec_pretty(&file)?)?;
    Ok(keypair)
}

/// Loads the libp2p identity at `path`, checking its peer id.
pub fn load_p2p(path: &Path) -> Result<Keypair> {
    let text = std::fs::read(path)
        .with_context(|| format!("reading libp2p key file {}", path.display()))?;
    let file: P2pKeyFile = serde_json::from_slice(&text)
        .with_context(|| format!("libp2p key file {} is not valid", path.display()))?;
    let keypair = hex::decode(&file.secret_key)
        .ok()
        .and_then(|secret| Keypair::ed25519_from_bytes(secret).ok())
        .with_context(|| format!("libp2p key file {} holds no valid secret", path.display()))?;
    if keypair.public().to_peer_id().to_string() != file.peer_id {
        bail!(
            "libp2p key file {} names a peer id that is not its secret's",
            path.display()
        );
    }
    Ok(keypair)
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

    #[test]
    fn bls_keys_are_private_checked_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/bls_key.json");
        let key = create_bls(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_bls(&path).unwrap().public_key(), key.public_key());
        assert!(create_bls(&path).is_err(), "overwrote a BLS key");
        let other = BlsSecretKey::from_seed(&[5; 32]).unwrap();
        let mut file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        file["public_key"] = hex::encode(other.public_key().to_compressed()).into();
        std::fs::write(&path, file.to_string()).unwrap();
        assert!(
            load_bls(&path).is_err(),
            "a mismatched public key was accepted"
        );
    }
}
