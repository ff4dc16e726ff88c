//! Transactions that carry their own authority, a quorum certificate, instead of a signature,
//! and the vote extension that builds those certificates.
//!
//! On the wire a system transaction is one `0x00` byte and an encoded `ipsat.v1.SystemTx`. A
//! signed `Tx` can never start with `0x00` (protobuf has no field 0), so the two never
//! collide. Like signed transactions, only the canonical encoding is accepted.

use ipsat_checkpoint::cross_msgs::{self, Release};

use crate::crossnet::CrossMessage;
use ipsat_checkpoint::{BlsSignature, Certificate, Checkpoint};
use ipsat_proto::v1::{self as pb, system_tx::Msg};
use prost::Message as _;

use crate::error::TxError;
use crate::light::LightBlock;
use crate::rsk::{
    GatewaySignature, RskAttestation, RskDeposit, RskPoint, RskUpdate, MAX_DEPOSITS_PER_UPDATE,
};
use crate::tx::MAX_TX_BYTES;
use crate::types::{is_valid_name, Address, Amount};

/// The first byte of every system transaction.
pub const SYSTEM_TX_PREFIX: u8 = 0x00;

/// A decoded system transaction whose stateless checks passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemTx {
    /// The certificate of this subnet's pending checkpoint; only a proposer includes it.
    OwnCertificate {
        /// The checkpoint's height.
        height: u64,
        /// Its certificate.
        certificate: Certificate,
        /// In a level-1 subnet, the signers' gateway signatures of the same digest, by
        /// strictly ascending index in the signing set.
        gateway_signatures: Vec<(u32, GatewaySignature)>,
    },
    /// The next checkpoint of a child, certified by the child's validators.
    ChildCheckpoint {
        /// The child's name under this subnet.
        subnet: String,
        /// The checkpoint (boxed: it is most of the variant's size).
        checkpoint: Box<Checkpoint>,
        /// Its certificate.
        certificate: Certificate,
        /// The releases under its `cross_msgs_root`, which they were checked to match.
        releases: Vec<Release>,
        /// The cross-net messages under it, after the releases.
        messages: Vec<CrossMessage>,
    },
    /// Newer headers of this subnet's parent and top-down messages proven against them.
    ParentUpdate(ParentUpdate),
    /// A level-1 subnet's validators' attestation of RSK and the deposits it covers.
    RskUpdate(RskUpdate),
}

/// Headers of the parent, in increasing height, each to be verified from the one trusted
/// before it, and top-down messages proven against the app hash of the last header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentUpdate {
    /// The headers, decoded and canonically encoded.
    pub headers: Vec<LightBlock>,
    /// Proofs of the parent's top-down message keys.
    pub messages: Vec<pb::StateProof>,
}

impl ParentUpdate {
    fn from_proto(update: pb::ParentUpdate) -> Result<Self, TxError> {
        let mut headers = Vec::with_capacity(update.headers.len());
        for block in update.headers {
            let decoded = LightBlock::decode(
                &block.signed_header,
                &block.validators,
                &block.next_validators,
            )
            .map_err(|e| malformed(e.to_string()))?;
            if light_block_to_proto(&decoded) != block {
                return Err(malformed("parent light block is not canonically encoded"));
            }
            headers.push(decoded);
        }
        if headers.is_empty() && update.messages.is_empty() {
            return Err(malformed("empty parent update"));
        }
        if !headers
            .windows(2)
            .all(|w| w[0].signed_header.header.height < w[1].signed_header.header.height)
        {
            return Err(malformed("parent headers are not in increasing height"));
        }
        Ok(Self {
            headers,
            messages: update.messages,
        })
    }

    fn to_proto(&self) -> pb::ParentUpdate {
        pb::ParentUpdate {
            headers: self.headers.iter().map(light_block_to_proto).collect(),
            messages: self.messages.clone(),
        }
    }
}

/// The wire form of a release.
pub fn release_to_proto(release: &Release) -> pb::CrossRelease {
    pb::CrossRelease {
        recipient: release.recipient.to_vec(),
        amount: Amount::from_atto(release.amount).to_string(),
        nonce: release.nonce,
    }
}

/// The releases and cross-net messages `wire` and `wire_messages` carry for `checkpoint`:
/// well formed, releases in consecutive nonce order, as many as the checkpoint counts and
/// hashing (releases first) to its `cross_msgs_root`.
fn bottom_up_of(
    checkpoint: &Checkpoint,
    wire: &[pb::CrossRelease],
    wire_messages: &[Vec<u8>],
) -> Result<(Vec<Release>, Vec<CrossMessage>), TxError> {
    let releases = wire
        .iter()
        .map(|r| {
            Ok(Release {
                recipient: Address::from_slice(&r.recipient)
                    .map_err(|_| malformed("release recipient must be 20 bytes"))?
                    .0,
                amount: r
                    .amount
                    .parse::<Amount>()
                    .map_err(|_| TxError::InvalidAmount(format!("release amount {:?}", r.amount)))?
                    .atto(),
                nonce: r.nonce,
            })
        })
        .collect::<Result<Vec<_>, TxError>>()?;
    if !releases.windows(2).all(|w| w[1].nonce == w[0].nonce + 1) {
        return Err(malformed("releases are not in consecutive nonce order"));
    }
    let messages = wire_messages
        .iter()
        .map(|bytes| CrossMessage::decode(bytes).map_err(malformed))
        .collect::<Result<Vec<_>, TxError>>()?;
    let leaves: Vec<[u8; 32]> = releases
        .iter()
        .map(Release::leaf)
        .chain(messages.iter().map(CrossMessage::leaf))
        .collect();
    if leaves.len() as u64 != checkpoint.cross_msgs_count
        || cross_msgs::root(&leaves) != checkpoint.cross_msgs_root
    {
        return Err(malformed(
            "the releases and messages do not match the checkpoint's cross_msgs_root and count",
        ));
    }
    Ok((releases, messages))
}

/// The wire form of a light block.
pub fn light_block_to_proto(block: &LightBlock) -> pb::LightBlock {
    let (signed_header, validators, next_validators) = block.encode();
    pb::LightBlock {
        signed_header,
        validators,
        next_validators,
    }
}

fn malformed(why: impl Into<String>) -> TxError {
    TxError::Malformed(why.into())
}

/// Whether `raw` is a system transaction rather than a signed one.
pub fn is_system(raw: &[u8]) -> bool {
    raw.first() == Some(&SYSTEM_TX_PREFIX)
}

/// A certificate from its wire form; the aggregate signature is subgroup-checked here.
pub fn certificate_from_proto(
    certificate: Option<pb::CheckpointCertificate>,
) -> Result<Certificate, TxError> {
    let certificate = certificate.ok_or_else(|| malformed("missing certificate"))?;
    let signature = BlsSignature::from_bytes(&certificate.signature)
        .map_err(|e| TxError::InvalidCertificate(format!("aggregate signature: {e}")))?;
    Ok(Certificate {
        signers: certificate.signers,
        signature,
    })
}

/// The wire form of a certificate.
pub fn certificate_to_proto(certificate: &Certificate) -> pb::CheckpointCertificate {
    pb::CheckpointCertificate {
        signers: certificate.signers.clone(),
        signature: certificate.signature.to_bytes().to_vec(),
    }
}

impl SystemTx {
    /// The delivery of a child's checkpoint as the child's API serves it (`GetCheckpoint`),
    /// for the parent where the child is named `subnet`.
    pub fn child_checkpoint_from_proto(
        subnet: &str,
        checkpoint: &pb::Checkpoint,
    ) -> Result<Self, TxError> {
        if !is_valid_name(subnet) {
            return Err(TxError::SubnetNotFound(subnet.to_owned()));
        }
        let parsed =
            Checkpoint::abi_decode(&checkpoint.abi).map_err(|e| malformed(e.to_string()))?;
        if parsed.height != checkpoint.height {
            return Err(malformed("the checkpoint's encoding and height disagree"));
        }
        let (releases, messages) =
            bottom_up_of(&parsed, &checkpoint.releases, &checkpoint.messages)?;
        Ok(SystemTx::ChildCheckpoint {
            subnet: subnet.to_owned(),
            releases,
            messages,
            checkpoint: Box::new(parsed),
            certificate: certificate_from_proto(checkpoint.certificate.clone())?,
        })
    }

    /// Decodes `raw` if it is a system transaction (`Ok(None)` if it is not one).
    pub fn decode(raw: &[u8]) -> Result<Option<Self>, TxError> {
        let Some(body) = raw.strip_prefix(&[SYSTEM_TX_PREFIX]) else {
            return Ok(None);
        };
        if raw.len() > MAX_TX_BYTES {
            return Err(TxError::TxTooLarge {
                max: MAX_TX_BYTES,
                got: raw.len(),
            });
        }
        let message =
            pb::SystemTx::decode(body).map_err(|e| malformed(format!("system tx: {e}")))?;
        if message.encode_to_vec() != body {
            return Err(malformed("system tx is not canonically encoded"));
        }
        let tx = match message.msg.ok_or_else(|| malformed("empty system tx"))? {
            Msg::OwnCertificate(own) => SystemTx::OwnCertificate {
                height: own.height,
                certificate: certificate_from_proto(own.certificate)?,
                gateway_signatures: gateway_signatures_from_proto(own.gateway_signatures)?,
            },
            Msg::ChildCheckpoint(child) => {
                if !is_valid_name(&child.subnet) {
                    return Err(TxError::SubnetNotFound(child.subnet));
                }
                let certified = child
                    .checkpoint
                    .ok_or_else(|| malformed("missing checkpoint"))?;
                let checkpoint = Checkpoint::abi_decode(&certified.checkpoint)
                    .map(Box::new)
                    .map_err(|e| malformed(e.to_string()))?;
                let (releases, messages) =
                    bottom_up_of(&checkpoint, &child.releases, &child.messages)?;
                SystemTx::ChildCheckpoint {
                    subnet: child.subnet,
                    releases,
                    messages,
                    checkpoint,
                    certificate: certificate_from_proto(certified.certificate)?,
                }
            }
            Msg::ParentUpdate(update) => SystemTx::ParentUpdate(ParentUpdate::from_proto(update)?),
            Msg::RskUpdate(update) => SystemTx::RskUpdate(rsk_update_from_proto(update)?),
        };
        Ok(Some(tx))
    }

    /// The wire bytes: the prefix and the canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let msg = match self {
            SystemTx::OwnCertificate {
                height,
                certificate,
                gateway_signatures,
            } => Msg::OwnCertificate(pb::OwnCertificate {
                height: *height,
                certificate: Some(certificate_to_proto(certificate)),
                gateway_signatures: gateway_signatures
                    .iter()
                    .map(|(signer, signature)| pb::GatewaySignature {
                        signer: *signer,
                        signature: signature.0.to_vec(),
                    })
                    .collect(),
            }),
            SystemTx::ChildCheckpoint {
                subnet,
                checkpoint,
                certificate,
                releases,
                messages,
            } => Msg::ChildCheckpoint(pb::ChildCheckpoint {
                subnet: subnet.clone(),
                checkpoint: Some(pb::CertifiedCheckpoint {
                    checkpoint: checkpoint.abi_encode().to_vec(),
                    certificate: Some(certificate_to_proto(certificate)),
                }),
                releases: releases.iter().map(release_to_proto).collect(),
                messages: messages.iter().map(CrossMessage::encode).collect(),
            }),
            SystemTx::ParentUpdate(update) => Msg::ParentUpdate(update.to_proto()),
            SystemTx::RskUpdate(update) => Msg::RskUpdate(rsk_update_to_proto(update)),
        };
        let body = pb::SystemTx { msg: Some(msg) }.encode_to_vec();
        [&[SYSTEM_TX_PREFIX][..], &body].concat()
    }
}

/// Gateway signatures from the wire: each well-formed, by strictly ascending signer index.
fn gateway_signatures_from_proto(
    signatures: Vec<pb::GatewaySignature>,
) -> Result<Vec<(u32, GatewaySignature)>, TxError> {
    let decoded = signatures
        .into_iter()
        .map(|s| Ok((s.signer, GatewaySignature::from_bytes(&s.signature)?)))
        .collect::<Result<Vec<_>, TxError>>()?;
    if !decoded.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err(malformed("gateway signatures are not by ascending signer"));
    }
    Ok(decoded)
}

fn hash32(bytes: &[u8], what: &str) -> Result<[u8; 32], TxError> {
    bytes
        .try_into()
        .map_err(|_| malformed(format!("{what} must be 32 bytes")))
}

fn rsk_point_from_proto(point: Option<pb::RskPoint>) -> Result<RskPoint, TxError> {
    let point = point.ok_or_else(|| malformed("missing RSK point"))?;
    Ok(RskPoint {
        height: point.height,
        block_hash: hash32(&point.block_hash, "RSK block hash")?,
        deposit_count: point.deposit_count,
        deposits_digest: hash32(&point.deposits_digest, "RSK deposits digest")?,
    })
}

fn rsk_point_to_proto(point: &RskPoint) -> pb::RskPoint {
    pb::RskPoint {
        height: point.height,
        block_hash: point.block_hash.to_vec(),
        deposit_count: point.deposit_count,
        deposits_digest: point.deposits_digest.to_vec(),
    }
}

fn rsk_update_from_proto(update: pb::RskUpdate) -> Result<RskUpdate, TxError> {
    if update.deposits.len() > MAX_DEPOSITS_PER_UPDATE {
        return Err(malformed(format!(
            "an RSK update carries at most {MAX_DEPOSITS_PER_UPDATE} deposits"
        )));
    }
    let deposits = update
        .deposits
        .into_iter()
        .map(|d| {
            Ok(RskDeposit {
                recipient: Address::from_slice(&d.recipient)
                    .map_err(|e| malformed(e.to_string()))?,
                amount: d
                    .amount
                    .parse::<Amount>()
                    .ok()
                    .filter(|a| a.to_string() == d.amount)
                    .ok_or_else(|| TxError::InvalidAmount(d.amount.clone()))?,
                nonce: d.nonce,
            })
        })
        .collect::<Result<Vec<_>, TxError>>()?;
    Ok(RskUpdate {
        point: rsk_point_from_proto(update.point)?,
        certificate: certificate_from_proto(update.certificate)?,
        deposits,
    })
}

fn rsk_update_to_proto(update: &RskUpdate) -> pb::RskUpdate {
    pb::RskUpdate {
        point: Some(rsk_point_to_proto(&update.point)),
        certificate: Some(certificate_to_proto(&update.certificate)),
        deposits: update
            .deposits
            .iter()
            .map(|d| pb::RskDeposit {
                recipient: d.recipient.0.to_vec(),
                amount: d.amount.to_string(),
                nonce: d.nonce,
            })
            .collect(),
    }
}

/// A validator's signature of the pending checkpoint at `height`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointVote {
    /// The height of the checkpoint signed.
    pub height: u64,
    /// The BLS signature of its digest, subgroup-checked.
    pub signature: BlsSignature,
    /// In a level-1 subnet, the validator's gateway signature of the same digest.
    pub gateway_signature: Option<GatewaySignature>,
}

/// A validator's vote extension. Both parts are optional; with neither it is empty bytes,
/// which every validator accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VoteExtension {
    /// Its vote on the pending checkpoint.
    pub checkpoint: Option<CheckpointVote>,
    /// In a level-1 subnet, what it read from RSK.
    pub rsk: Option<RskAttestation>,
}

impl VoteExtension {
    /// Decodes an extension, refusing any non-canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, TxError> {
        let extension =
            pb::VoteExtension::decode(bytes).map_err(|e| malformed(format!("vote: {e}")))?;
        if extension.encode_to_vec() != bytes {
            return Err(malformed("vote extension is not canonically encoded"));
        }
        let checkpoint = extension
            .checkpoint
            .map(|vote| {
                Ok::<_, TxError>(CheckpointVote {
                    height: vote.height,
                    signature: BlsSignature::from_bytes(&vote.signature)
                        .map_err(|e| malformed(format!("vote signature: {e}")))?,
                    gateway_signature: match vote.gateway_signature.as_slice() {
                        [] => None,
                        bytes => Some(GatewaySignature::from_bytes(bytes)?),
                    },
                })
            })
            .transpose()?;
        let rsk = extension
            .rsk
            .map(|attestation| {
                Ok::<_, TxError>(RskAttestation {
                    point: rsk_point_from_proto(attestation.point)?,
                    signature: BlsSignature::from_bytes(&attestation.signature)
                        .map_err(|e| malformed(format!("RSK attestation signature: {e}")))?,
                })
            })
            .transpose()?;
        Ok(Self { checkpoint, rsk })
    }

    /// The extension's bytes.
    pub fn encode(&self) -> Vec<u8> {
        pb::VoteExtension {
            checkpoint: self.checkpoint.as_ref().map(|vote| pb::CheckpointVote {
                height: vote.height,
                signature: vote.signature.to_bytes().to_vec(),
                gateway_signature: vote
                    .gateway_signature
                    .map(|s| s.0.to_vec())
                    .unwrap_or_default(),
            }),
            rsk: self.rsk.as_ref().map(|attestation| pb::RskAttestation {
                point: Some(rsk_point_to_proto(&attestation.point)),
                signature: attestation.signature.to_bytes().to_vec(),
            }),
        }
        .encode_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use ipsat_checkpoint::{BlsSecretKey, CheckpointHash, SubnetHash, ValidatorSetHash};

    use super::*;

    fn certificate() -> Certificate {
        let key = BlsSecretKey::from_seed(&[1; 32]).unwrap();
        Certificate::aggregate(1, &[(0, key.sign(b"digest"))]).unwrap()
    }

    #[test]
    fn system_transactions_round_trip_and_only_canonically() {
        let own = SystemTx::OwnCertificate {
            height: 10,
            certificate: certificate(),
            gateway_signatures: vec![(
                0,
                GatewaySignature::sign(
                    &secp256k1::SecretKey::from_slice(&[3; 32]).unwrap(),
                    &[4; 32],
                ),
            )],
        };
        let rsk = SystemTx::RskUpdate(RskUpdate {
            point: RskPoint {
                height: 20,
                block_hash: [5; 32],
                deposit_count: 1,
                deposits_digest: [6; 32],
            },
            certificate: certificate(),
            deposits: vec![RskDeposit {
                recipient: Address([7; 20]),
                amount: Amount::from_atto(8),
                nonce: 0,
            }],
        });
        // A child's checkpoint committing to `root` over `count` items, carrying `releases`.
        let delivery =
            |root: [u8; 32], count: u64, releases: Vec<Release>| SystemTx::ChildCheckpoint {
                subnet: "beta".into(),
                checkpoint: Box::new(Checkpoint {
                    subnet: SubnetHash::of_path("/r33/alpha/beta"),
                    height: 5,
                    block_hash: [1; 32],
                    state_root: [2; 32],
                    history_root: [3; 32],
                    cross_msgs_root: root,
                    cross_msgs_count: count,
                    next_validator_set_hash: ValidatorSetHash([4; 32]),
                    configuration_number: 3,
                    previous: CheckpointHash::default(),
                }),
                certificate: certificate(),
                releases,
                messages: Vec::new(),
            };
        let child = delivery([0; 32], 0, Vec::new());
        for tx in [own, child, rsk] {
            let raw = tx.encode();
            assert!(is_system(&raw));
            assert_eq!(SystemTx::decode(&raw), Ok(Some(tx)));
            let mut padded = raw.clone();
            padded.extend_from_slice(&[0x18, 0x00]);
            assert!(SystemTx::decode(&padded).is_err());
        }
        assert_eq!(SystemTx::decode(&[0x0a, 0x00]), Ok(None));

        // Releases must be exactly those under the checkpoint's root, in nonce order.
        let releases: Vec<Release> = (0..3)
            .map(|nonce| Release {
                recipient: [7; 20],
                amount: 10 + u128::from(nonce),
                nonce,
            })
            .collect();
        let root = cross_msgs::releases_root(&releases);
        let with_releases = |carried: Vec<Release>| delivery(root, 3, carried);
        let honest = with_releases(releases.clone());
        assert_eq!(SystemTx::decode(&honest.encode()), Ok(Some(honest)));
        let mut inflated = releases.clone();
        inflated[1].amount += 1;
        let mut reordered = releases.clone();
        reordered.swap(0, 1);
        for carried in [inflated, reordered, releases[..2].to_vec(), Vec::new()] {
            assert!(SystemTx::decode(&with_releases(carried).encode()).is_err());
        }
        assert!(SystemTx::decode(&[SYSTEM_TX_PREFIX]).is_err());
    }

    #[test]
    fn votes_round_trip_and_bad_signatures_are_malformed() {
        let key = BlsSecretKey::from_seed(&[2; 32]).unwrap();
        let vote = VoteExtension {
            checkpoint: Some(CheckpointVote {
                height: 30,
                signature: key.sign(b"x"),
                gateway_signature: None,
            }),
            rsk: Some(RskAttestation {
                point: RskPoint {
                    height: 40,
                    block_hash: [1; 32],
                    deposit_count: 0,
                    deposits_digest: [0; 32],
                },
                signature: key.sign(b"y"),
            }),
        };
        assert_eq!(VoteExtension::decode(&vote.encode()), Ok(vote.clone()));
        let mut bytes = vote.encode();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(VoteExtension::decode(&bytes).is_err());
        assert_eq!(VoteExtension::decode(&[]), Ok(VoteExtension::default()));
        assert!(VoteExtension::default().encode().is_empty());
    }
}
