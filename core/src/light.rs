//! Light-client verification of CometBFT headers, so a proof checked against a header's app
//! hash is checked against what the validators signed, not against what one node says.
//!
//! A header is verified from a trust root the caller gives explicitly: a validator set it
//! trusts (the genesis set, for a subnet whose set has not changed), or a header it trusts by
//! hash, from which CometBFT's skipping verification (`tendermint-light-client-verifier`)
//! reaches the target as long as enough of the trusted validators still sign.

use tendermint::block::signed_header::SignedHeader;
use tendermint::block::CommitSig;
use tendermint::chain::Id as ChainId;
use tendermint::validator::{Info, Set as ValidatorSet};
use tendermint::{Hash, Time};
use tendermint_light_client_verifier::options::Options;
use tendermint_light_client_verifier::types::{
    TrustThreshold, TrustedBlockState, UntrustedBlockState,
};
use tendermint_light_client_verifier::{ProdVerifier, Verdict, Verifier as _};
use tendermint_proto::v0_38::types::{
    SignedHeader as RawSignedHeader, ValidatorSet as RawValidatorSet,
};

/// Why a header could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum LightError {
    /// The bytes are not a header or validator set.
    #[error("malformed light block: {0}")]
    Malformed(String),
    /// The header is for another chain than the trust root.
    #[error("the header is for chain {got}, the trust root for {expected}")]
    WrongChain {
        /// The trust root's chain.
        expected: String,
        /// The header's chain.
        got: String,
    },
    /// The trusted header does not have the hash the caller trusts.
    #[error("the header at the trusted height has hash {got}, not the trusted {expected}")]
    TrustedHashMismatch {
        /// The hash the caller trusts.
        expected: String,
        /// What the node served.
        got: String,
    },
    /// The validators who signed are not the trusted set.
    #[error("the header's validator set is not the trusted one (it changed since genesis: start from a trusted header instead)")]
    UntrustedValidators,
    /// CometBFT's verification refused the header.
    #[error("light-client verification failed: {0}")]
    Verification(String),
}

/// A header with its commit, the validators of its height and of the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LightBlock {
    /// The header and the commit that signed it.
    pub signed_header: SignedHeader,
    /// The validators of this height.
    pub validators: ValidatorSet,
    /// The validators of the next height.
    pub next_validators: ValidatorSet,
}

impl LightBlock {
    /// Decodes the protobuf encodings of `tendermint.types.SignedHeader` and two
    /// `tendermint.types.ValidatorSet`s.
    pub fn decode(
        signed_header: &[u8],
        validators: &[u8],
        next_validators: &[u8],
    ) -> Result<Self, LightError> {
        let malformed = |e: tendermint_proto::Error| LightError::Malformed(e.to_string());
        Ok(Self {
            signed_header:
                <SignedHeader as tendermint_proto::Protobuf<RawSignedHeader>>::decode_vec(
                    signed_header,
                )
                .map_err(malformed)?,
            validators: <ValidatorSet as tendermint_proto::Protobuf<RawValidatorSet>>::decode_vec(
                validators,
            )
            .map_err(malformed)?,
            next_validators:
                <ValidatorSet as tendermint_proto::Protobuf<RawValidatorSet>>::decode_vec(
                    next_validators,
                )
                .map_err(malformed)?,
        })
    }

    /// The three protobuf encodings [`Self::decode`] reads.
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        (
            <SignedHeader as tendermint_proto::Protobuf<RawSignedHeader>>::encode_vec(
                self.signed_header.clone(),
            ),
            <ValidatorSet as tendermint_proto::Protobuf<RawValidatorSet>>::encode_vec(
                self.validators.clone(),
            ),
            <ValidatorSet as tendermint_proto::Protobuf<RawValidatorSet>>::encode_vec(
                self.next_validators.clone(),
            ),
        )
    }

    /// The header's hash.
    pub fn hash(&self) -> Hash {
        self.signed_header.header.hash()
    }
}

/// What a light client keeps between two updates: the last header it trusts and the
/// validators that sign the header after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedState {
    /// The header's chain.
    pub chain_id: ChainId,
    /// Its height.
    pub height: u64,
    /// Its time, from which the trusting period runs.
    pub time: Time,
    /// Its hash.
    pub hash: Hash,
    /// Its app hash (the state after the previous height).
    pub app_hash: Vec<u8>,
    /// The validators of the next height, as the header commits to them.
    pub next_validators: ValidatorSet,
}

impl TrustedState {
    /// The state a verified `block` leaves.
    pub fn of(block: &LightBlock) -> Self {
        let header = &block.signed_header.header;
        Self {
            chain_id: header.chain_id.clone(),
            height: header.height.value(),
            time: header.time,
            hash: block.hash(),
            app_hash: header.app_hash.as_bytes().to_vec(),
            next_validators: block.next_validators.clone(),
        }
    }

    /// The state `block`, trusted by `hash` (as a genesis names it), leaves: `block` must have
    /// that hash and carry the validator sets its header commits to.
    pub fn from_trusted(block: &LightBlock, hash: &Hash) -> Result<Self, LightError> {
        if block.hash() != *hash {
            return Err(LightError::TrustedHashMismatch {
                expected: hash.to_string(),
                got: block.hash().to_string(),
            });
        }
        let untrusted = UntrustedBlockState {
            signed_header: &block.signed_header,
            validators: &block.validators,
            next_validators: Some(&block.next_validators),
        };
        verdict(ProdVerifier::default().verify_validator_sets(&untrusted))?;
        Ok(Self::of(block))
    }

    /// Verifies `target`, a later header of the same chain, from this state: adjacent (the
    /// trusted next validators sign it) or skipping (more than a third of them still sign
    /// it, and its own validators more than two thirds), within `trusting_period` of this
    /// header's time as seen at `now`.
    pub fn verify(
        &self,
        target: &LightBlock,
        trusting_period: std::time::Duration,
        now: Time,
    ) -> Result<VerifiedHeader, LightError> {
        let header = &target.signed_header.header;
        if header.chain_id != self.chain_id {
            return Err(LightError::WrongChain {
                expected: self.chain_id.to_string(),
                got: header.chain_id.to_string(),
            });
        }
        if header.height.value() <= self.height {
            return Err(LightError::Verification(format!(
                "header {} is not above the trusted height {}",
                header.height, self.height
            )));
        }
        let trusted = TrustedBlockState {
            chain_id: &self.chain_id,
            header_time: self.time,
            height: tendermint::block::Height::try_from(self.height)
                .map_err(|e| LightError::Malformed(e.to_string()))?,
            next_validators: &self.next_validators,
            next_validators_hash: self.next_validators.hash(),
        };
        let untrusted = UntrustedBlockState {
            signed_header: &target.signed_header,
            validators: &target.validators,
            next_validators: Some(&target.next_validators),
        };
        let options = Options {
            trust_threshold: TrustThreshold::ONE_THIRD,
            trusting_period,
            clock_drift: std::time::Duration::from_secs(10),
        };
        verdict(ProdVerifier::default().verify_update_header(untrusted, trusted, &options, now))?;
        Ok(verified(target))
    }
}

/// A validator set's protobuf encoding (`tendermint.types.ValidatorSet`).
pub fn encode_validators(validators: &ValidatorSet) -> Vec<u8> {
    <ValidatorSet as tendermint_proto::Protobuf<RawValidatorSet>>::encode_vec(validators.clone())
}

/// A validator set from its protobuf encoding.
pub fn decode_validators(bytes: &[u8]) -> Result<ValidatorSet, LightError> {
    <ValidatorSet as tendermint_proto::Protobuf<RawValidatorSet>>::decode_vec(bytes)
        .map_err(|e| LightError::Malformed(e.to_string()))
}

/// What the caller trusts.
pub enum TrustRoot<'a> {
    /// The validator set of a chain, e.g. from its genesis: the target header must be signed
    /// by more than two thirds of exactly this set.
    ValidatorSet {
        /// The chain.
        chain_id: &'a str,
        /// The set.
        validators: &'a ValidatorSet,
    },
    /// A header the caller trusts by hash, and the light block the node served for it.
    Header {
        /// The hash the caller trusts.
        hash: Hash,
        /// The light block at that height.
        block: &'a LightBlock,
        /// How long a trusted header stays usable (shorter than the unbonding period).
        trusting_period: std::time::Duration,
        /// The verifier's current time.
        now: Time,
    },
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedHeader {
    /// The chain.
    pub chain_id: String,
    /// The verified header's height.
    pub height: u64,
    /// Its app hash, which commits to the state after the previous block.
    pub app_hash: Vec<u8>,
    /// Voting power whose signatures the commit carries.
    pub signed_power: u64,
    /// The power of the whole set.
    pub total_power: u64,
}

/// Genesis validators (CometBFT's `genesis.json` `validators` array) as a set.
pub fn genesis_validators(genesis: &serde_json::Value) -> Result<ValidatorSet, LightError> {
    let entries = genesis["validators"]
        .as_array()
        .ok_or_else(|| LightError::Malformed("genesis has no validators array".into()))?;
    let mut infos = Vec::with_capacity(entries.len());
    for entry in entries {
        let info: Info = serde_json::from_value(serde_json::json!({
            "address": entry["address"],
            "pub_key": entry["pub_key"],
            "power": entry["power"],
        }))
        .map_err(|e| LightError::Malformed(format!("genesis validator: {e}")))?;
        infos.push(info);
    }
    Ok(ValidatorSet::without_proposer(infos))
}

fn verdict(result: Verdict) -> Result<(), LightError> {
    match result {
        Verdict::Success => Ok(()),
        Verdict::NotEnoughTrust(tally) => Err(LightError::Verification(format!(
            "not enough trust: {tally}"
        ))),
        Verdict::Invalid(detail) => Err(LightError::Verification(detail.to_string())),
    }
}

fn signed_power(target: &LightBlock) -> u64 {
    target
        .signed_header
        .commit
        .signatures
        .iter()
        .filter_map(|sig| match sig {
            CommitSig::BlockIdFlagCommit {
                validator_address, ..
            } => target.validators.validator(*validator_address),
            _ => None,
        })
        .map(|v| v.power())
        .sum()
}

/// Verifies `target` from `root`: the commit is valid and signed by the validators the header
/// names, and those validators are trusted (directly, or through the trusted header).
pub fn verify_header(
    target: &LightBlock,
    root: &TrustRoot<'_>,
) -> Result<VerifiedHeader, LightError> {
    let verifier = ProdVerifier::default();
    let untrusted = UntrustedBlockState {
        signed_header: &target.signed_header,
        validators: &target.validators,
        next_validators: Some(&target.next_validators),
    };
    let header = &target.signed_header.header;
    let chain_of = |id: &str| LightError::WrongChain {
        expected: id.to_owned(),
        got: header.chain_id.to_string(),
    };
    match root {
        TrustRoot::ValidatorSet {
            chain_id,
            validators,
        } => {
            if header.chain_id.as_str() != *chain_id {
                return Err(chain_of(chain_id));
            }
            if validators.hash() != target.validators.hash() {
                return Err(LightError::UntrustedValidators);
            }
            verdict(verifier.verify_validator_sets(&untrusted))?;
            verdict(verifier.verify_commit(&untrusted))?;
        }
        TrustRoot::Header {
            hash,
            block,
            trusting_period,
            now,
        } => {
            if block.hash() != *hash {
                return Err(LightError::TrustedHashMismatch {
                    expected: hash.to_string(),
                    got: block.hash().to_string(),
                });
            }
            if target.signed_header.header.height == block.signed_header.header.height {
                // The target is the trusted header itself.
                if target.hash() != *hash {
                    return Err(LightError::TrustedHashMismatch {
                        expected: hash.to_string(),
                        got: target.hash().to_string(),
                    });
                }
            } else {
                return TrustedState::of(block).verify(target, *trusting_period, *now);
            }
        }
    }
    Ok(verified(target))
}

/// What verifying `target` established.
fn verified(target: &LightBlock) -> VerifiedHeader {
    let header = &target.signed_header.header;
    VerifiedHeader {
        chain_id: header.chain_id.to_string(),
        height: header.height.value(),
        app_hash: header.app_hash.as_bytes().to_vec(),
        signed_power: signed_power(target),
        total_power: target.validators.total_voting_power().value(),
    }
}

/// The ed25519 public key of `secret`, as CometBFT's validator keys hold it.
pub fn ed25519_public_key(secret: &[u8; 32]) -> [u8; 32] {
    ed25519_consensus::SigningKey::from(*secret)
        .verification_key()
        .to_bytes()
}

/// Signs CometBFT light blocks as a chain's validators would: every key signs the precommit of
/// each header. For programs that stand in for a chain (in-process test chains, benchmarks of
/// verification), never for a real network.
#[derive(Debug, Clone)]
pub struct ChainSigner {
    chain_id: ChainId,
    secrets: Vec<[u8; 32]>,
    validators: ValidatorSet,
}

/// One block for [`ChainSigner::sign`] to sign.
#[derive(Debug, Clone, Copy)]
pub struct BlockToSign<'a> {
    /// Its height.
    pub height: u64,
    /// Its time, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: i64,
    /// The app hash the header carries (the state after the previous height).
    pub app_hash: &'a [u8],
    /// Bytes the header's other hashes are derived from (the block's contents, say).
    pub seed: &'a [u8],
    /// The validator (index into the keys) that proposed it.
    pub proposer: usize,
}

impl ChainSigner {
    /// Validators with the ed25519 `secrets`, each of voting power `power`, on `chain_id`.
    pub fn new(chain_id: &str, secrets: Vec<[u8; 32]>, power: u32) -> Result<Self, LightError> {
        let chain_id: ChainId = chain_id
            .parse()
            .map_err(|_| LightError::Malformed(format!("chain id {chain_id:?}")))?;
        let infos = secrets
            .iter()
            .map(|secret| {
                tendermint::PublicKey::from_raw_ed25519(&ed25519_public_key(secret))
                    .map(|key| Info::new(key, tendermint::vote::Power::from(power)))
                    .ok_or_else(|| LightError::Malformed("ed25519 key".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            chain_id,
            secrets,
            validators: ValidatorSet::without_proposer(infos),
        })
    }

    /// The chain id the headers carry.
    pub fn chain_id(&self) -> &str {
        self.chain_id.as_str()
    }

    /// The validator set (the same at every height).
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    /// The header of `block`, chained to `previous`, and a commit signed by every key.
    pub fn sign(
        &self,
        block: BlockToSign<'_>,
        previous: Option<&LightBlock>,
    ) -> Result<LightBlock, LightError> {
        use tendermint::block::{parts, Commit, Header, Height, Id as BlockId, Round};
        use tendermint::vote::{Type, ValidatorIndex};

        let malformed = |what: &str| LightError::Malformed(what.to_owned());
        let time = Time::from_unix_timestamp(
            block.time_unix_nanos.div_euclid(1_000_000_000),
            block.time_unix_nanos.rem_euclid(1_000_000_000) as u32,
        )
        .map_err(|_| malformed("time"))?;
        let height = Height::try_from(block.height).map_err(|_| malformed("height"))?;
        let digest = |tag: &[u8]| -> Hash {
            use sha2::Digest as _;
            Hash::Sha256(
                sha2::Sha256::new()
                    .chain_update(tag)
                    .chain_update(block.seed)
                    .finalize()
                    .into(),
            )
        };
        let secret_of = |address: &tendermint::account::Id| {
            self.secrets.iter().find(|secret| {
                crate::types::cometbft_address(&ed25519_public_key(secret)) == *address.as_bytes()
            })
        };
        let proposer = self
            .secrets
            .get(block.proposer)
            .ok_or_else(|| malformed("proposer index"))?;
        let proposer_key = ed25519_public_key(proposer);
        let last_block_id = previous.map(|p| p.signed_header.commit.block_id);
        let header = Header {
            version: tendermint::block::header::Version { block: 11, app: 0 },
            chain_id: self.chain_id.clone(),
            height,
            time,
            last_commit_hash: last_block_id.map(|_| digest(b"last_commit")),
            last_block_id,
            data_hash: Some(digest(b"data")),
            validators_hash: self.validators.hash(),
            next_validators_hash: self.validators.hash(),
            consensus_hash: digest(b"consensus"),
            app_hash: tendermint::AppHash::try_from(block.app_hash.to_vec())
                .map_err(|_| malformed("app hash"))?,
            last_results_hash: Some(digest(b"results")),
            evidence_hash: Some(digest(b"evidence")),
            proposer_address: tendermint::account::Id::new(crate::types::cometbft_address(
                &proposer_key,
            )),
        };
        let block_id = BlockId {
            hash: header.hash(),
            part_set_header: parts::Header::new(1, digest(b"parts"))
                .map_err(|_| malformed("part set"))?,
        };
        let mut signatures = Vec::with_capacity(self.validators.validators().len());
        for (index, validator) in self.validators.validators().iter().enumerate() {
            let secret = secret_of(&validator.address).ok_or_else(|| malformed("validator key"))?;
            let vote = tendermint::Vote {
                vote_type: Type::Precommit,
                height,
                round: Round::default(),
                block_id: Some(block_id),
                timestamp: Some(time),
                validator_address: validator.address,
                validator_index: ValidatorIndex::try_from(index as u32)
                    .map_err(|_| malformed("validator index"))?,
                signature: None,
                extension: Vec::new(),
                extension_signature: None,
            };
            let signature = ed25519_consensus::SigningKey::from(*secret)
                .sign(&vote.into_signable_vec(self.chain_id.clone()))
                .to_bytes();
            signatures.push(CommitSig::BlockIdFlagCommit {
                validator_address: validator.address,
                timestamp: time,
                signature: tendermint::Signature::new(signature)
                    .map_err(|_| malformed("signature"))?,
            });
        }
        let commit = Commit {
            height,
            round: Round::default(),
            block_id,
            signatures,
        };
        Ok(LightBlock {
            signed_header: SignedHeader::new(header, commit)
                .map_err(|e| LightError::Malformed(e.to_string()))?,
            validators: self.validators.clone(),
            next_validators: self.validators.clone(),
        })
    }
}
