//! Newtypes for the values every other module passes around; each has a checked constructor
//! so an invalid subnet id, address or amount cannot exist past the parsing boundary.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A value from outside that is not a valid id, address, amount or name.
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("invalid subnet id {0:?}: expected /r<chain-id>/<name>/..., names [a-z0-9-]{{1,32}}")]
    SubnetId(String),
    #[error("invalid address {0:?}: expected 20 bytes as 40 hex digits, 0x optional")]
    Address(String),
    #[error("invalid amount {0:?}: expected a decimal integer of atto-RBTC below 2^128")]
    Amount(String),
    #[error("invalid name {0:?}: expected [a-z0-9-]{{1,32}}")]
    Name(String),
}

/// `[a-z0-9-]{1,32}`: the name of a subnet or a keyspace.
pub fn is_valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The 20-byte CometBFT address of an ed25519 consensus key: the first 20 bytes of its
/// SHA-256, which is how votes name their validator.
pub fn cometbft_address(ed25519_key: &[u8; 32]) -> [u8; 20] {
    use sha2::Digest as _;
    let digest: [u8; 32] = sha2::Sha256::digest(ed25519_key).into();
    let mut address = [0u8; 20];
    address.copy_from_slice(&digest[..20]);
    address
}

/// Path of a subnet in the blocktree: `/r<rsk-chain-id>/<name>/<name>...`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubnetId(String);

impl SubnetId {
    /// The path, e.g. `/r33/alpha`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment of the path: the name under its parent (for a level-1 subnet, under
    /// the gateway).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }

    /// The subnet above this one; `None` for the root (`/r33`), which stands for RSK itself.
    pub fn parent(&self) -> Option<SubnetId> {
        match self.0.rsplit_once('/') {
            Some((parent, _)) if !parent.is_empty() => Some(SubnetId(parent.to_owned())),
            _ => None,
        }
    }

    /// How many levels below RSK this subnet is: 1 under the gateway, 0 for the root.
    pub fn level(&self) -> usize {
        self.0.matches('/').count() - 1
    }

    /// The child `name` of this subnet.
    pub fn child(&self, name: &str) -> Result<SubnetId, ParseError> {
        format!("{}/{name}", self.0).parse()
    }

    /// The `bytes32` id the gateway and checkpoints use: keccak256 of the path.
    pub fn hash(&self) -> ipsat_checkpoint::SubnetHash {
        ipsat_checkpoint::SubnetHash::of_path(&self.0)
    }

    /// The CometBFT chain id of this subnet: `ipsat-` and the first 8 bytes of its hash in hex,
    /// since a path can exceed CometBFT's 50 characters.
    pub fn chain_id(&self) -> String {
        format!("ipsat-{}", hex::encode(&self.hash().0[..8]))
    }

    /// The RSK chain id at the root of this subnet's tree.
    pub fn root_chain_id(&self) -> u64 {
        let root = self.0[2..].split('/').next().unwrap_or_default();
        root.parse().expect("validated at construction")
    }
}

impl FromStr for SubnetId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError::SubnetId(s.to_owned());
        let rest = s.strip_prefix("/r").ok_or_else(err)?;
        let mut parts = rest.split('/');
        let chain = parts.next().ok_or_else(err)?;
        if chain.is_empty()
            || chain.len() > 19
            || !chain.bytes().all(|b| b.is_ascii_digit())
            || chain.parse::<u64>().is_err()
        {
            return Err(err());
        }
        if !parts.all(is_valid_name) {
            return Err(err());
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for SubnetId {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SubnetId> for String {
    fn from(id: SubnetId) -> Self {
        id.0
    }
}

impl fmt::Display for SubnetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 20-byte Ethereum-style account address: keccak256(uncompressed pubkey)[12..].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(
    /// The raw 20 bytes.
    pub [u8; 20],
);

impl Address {
    /// The address in `bytes`, which must be exactly 20 long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ParseError> {
        <[u8; 20]>::try_from(bytes)
            .map(Address)
            .map_err(|_| ParseError::Address(hex::encode(bytes)))
    }

    /// The raw 20 bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Address {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        let bytes = hex::decode(digits).map_err(|_| ParseError::Address(s.to_owned()))?;
        Address::from_slice(&bytes).map_err(|_| ParseError::Address(s.to_owned()))
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An amount of atto-RBTC (10^-18 RBTC, the unit of RSK's wei).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(u128);

impl Amount {
    /// Nothing.
    pub const ZERO: Amount = Amount(0);

    /// `atto` atto-RBTC.
    pub const fn from_atto(atto: u128) -> Self {
        Amount(atto)
    }

    /// The amount in atto-RBTC.
    pub fn atto(self) -> u128 {
        self.0
    }

    /// `self + other`, `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, `None` below zero.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Whether this is no value at all.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Amount {
    type Err = ParseError;
    /// Strict: ASCII digits only, no sign, no leading zeros, no whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError::Amount(s.to_owned());
        if s.is_empty()
            || !s.bytes().all(|b| b.is_ascii_digit())
            || (s.len() > 1 && s.starts_with('0'))
        {
            return Err(err());
        }
        s.parse::<u128>().map(Amount).map_err(|_| err())
    }
}

impl Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_ids() {
        for ok in ["/r33", "/r33/alpha", "/r31/alpha/beta-2", "/r30/a"] {
            assert_eq!(ok.parse::<SubnetId>().unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "r33",
            "/r",
            "/rx/a",
            "/r33/",
            "/r33/Alpha",
            "/r33//a",
            "/r33/a_b",
            "/r-1/a",
            "/r99999999999999999999/a",
        ] {
            assert!(bad.parse::<SubnetId>().is_err(), "{bad}");
        }
        let long = format!("/r33/{}", "a".repeat(33));
        assert!(long.parse::<SubnetId>().is_err());
        assert_eq!("/r31/x".parse::<SubnetId>().unwrap().root_chain_id(), 31);
    }

    #[test]
    fn amounts_are_strict_decimal() {
        assert_eq!("0".parse::<Amount>().unwrap(), Amount::ZERO);
        assert_eq!(
            u128::MAX.to_string().parse::<Amount>().unwrap().atto(),
            u128::MAX
        );
        for bad in [
            "",
            "-1",
            "+1",
            "01",
            "1.5",
            " 1",
            "1e3",
            "340282366920938463463374607431768211456",
        ] {
            assert!(bad.parse::<Amount>().is_err(), "{bad}");
        }
        assert_eq!(Amount::from_atto(1).checked_sub(Amount::from_atto(2)), None);
        assert_eq!(
            Amount::from_atto(u128::MAX).checked_add(Amount::from_atto(1)),
            None
        );
    }

    #[test]
    fn addresses() {
        let a: Address = "0x00112233445566778899aabbccddeeff00112233"
            .parse()
            .unwrap();
        assert_eq!(a.to_string(), "0x00112233445566778899aabbccddeeff00112233");
        assert_eq!(
            "00112233445566778899aabbccddeeff00112233"
                .parse::<Address>()
                .unwrap(),
            a
        );
        assert!("0x0011".parse::<Address>().is_err());
        assert!("0xzz112233445566778899aabbccddeeff00112233"
            .parse::<Address>()
            .is_err());
        assert!(Address::from_slice(&[0; 19]).is_err());
    }
}
