//! Layout of the authenticated state: which key holds what, and the records' encodings.
//! Records are borsh-encoded, which is canonical, so every node writes identical bytes.

use borsh::{BorshDeserialize, BorshSerialize};
use ipsat_proto::v1 as pb;

use crate::types::{Address, Amount};

/// Fees accumulate here until validator rewards distribute them. No key controls it.
pub const FEE_POOL: Address = Address([0xfe; 20]);

/// Holds the subnet's [`Params`].
pub const PARAMS_KEY: &[u8] = b"p";

/// Upper bounds a keyspace creator may choose for its key and value sizes.
pub const MAX_KEY_LIMIT: u32 = 1024;
pub const MAX_VALUE_LIMIT: u32 = 64 * 1024;
/// Most writers an allow-list keyspace may name.
pub const MAX_WRITERS: usize = 64;

pub fn account_key(address: &Address) -> Vec<u8> {
    [b"a/".as_slice(), address.as_bytes()].concat()
}

pub fn keyspace_key(name: &str) -> Vec<u8> {
    [b"k/".as_slice(), name.as_bytes()].concat()
}

/// Keyspace names are `[a-z0-9-]`, so the `/` after the name cannot be part of it.
pub fn kv_key(keyspace: &str, key: &[u8]) -> Vec<u8> {
    [b"v/".as_slice(), keyspace.as_bytes(), b"/", key].concat()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AccountRecord {
    pub balance: u128,
    pub nonce: u64,
}

impl AccountRecord {
    pub fn balance(&self) -> Amount {
        Amount::from_atto(self.balance)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum WritePolicy {
    OwnerOnly = 1,
    AllowList = 2,
    Open = 3,
}

impl WritePolicy {
    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::WritePolicy::try_from(value).ok()? {
            pb::WritePolicy::OwnerOnly => Some(Self::OwnerOnly),
            pb::WritePolicy::AllowList => Some(Self::AllowList),
            pb::WritePolicy::Open => Some(Self::Open),
            pb::WritePolicy::Unspecified => None,
        }
    }

    pub fn to_proto(self) -> pb::WritePolicy {
        match self {
            Self::OwnerOnly => pb::WritePolicy::OwnerOnly,
            Self::AllowList => pb::WritePolicy::AllowList,
            Self::Open => pb::WritePolicy::Open,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct KeyspaceRecord {
    pub owner: [u8; 20],
    pub policy: WritePolicy,
    /// Sorted and deduplicated.
    pub writers: Vec<[u8; 20]>,
    pub max_key_bytes: u32,
    pub max_value_bytes: u32,
}

impl KeyspaceRecord {
    pub fn may_write(&self, writer: &Address) -> bool {
        match self.policy {
            WritePolicy::Open => true,
            WritePolicy::OwnerOnly => writer.0 == self.owner,
            WritePolicy::AllowList => {
                writer.0 == self.owner || self.writers.binary_search(&writer.0).is_ok()
            }
        }
    }

    pub fn to_proto(&self, name: &str) -> pb::Keyspace {
        pb::Keyspace {
            name: name.to_owned(),
            owner: self.owner.to_vec(),
            write_policy: self.policy.to_proto() as i32,
            writers: self.writers.iter().map(|w| w.to_vec()).collect(),
            max_key_bytes: self.max_key_bytes,
            max_value_bytes: self.max_value_bytes,
        }
    }
}

/// Economic parameters fixed at genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Params {
    pub fee_base: u128,
    pub fee_per_byte: u128,
}

impl Params {
    /// The least fee a transaction of `size` encoded bytes must offer.
    pub fn min_fee(&self, size: usize) -> Amount {
        let per_byte = self.fee_per_byte.saturating_mul(size as u128);
        Amount::from_atto(self.fee_base.saturating_add(per_byte))
    }
}
