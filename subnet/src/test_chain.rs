//! `TestChain`: N validators of one subnet in one process, each with its own RocksDB store,
//! driven through the whole ABCI++ flow of every height the way CometBFT drives them:
//!
//! 1. PrepareProposal on the height's proposer (round-robin), with the previous height's
//!    votes and their extensions as `local_last_commit`;
//! 2. ProcessProposal on every validator, which must all accept;
//! 3. ExtendVote on every validator, and VerifyVoteExtension of each extension on every other
//!    validator, which must all accept;
//! 4. FinalizeBlock on every validator, whose app hashes must be equal;
//! 5. Commit on every validator.
//!
//! It stands in for CometBFT's consensus only (as Penumbra's `mock-consensus` does) so state
//! machine tests are fast and deterministic; everything that involves consensus is also tested
//! on real CometBFT networks in `node/tests/`.
//!
//! After each commit it also signs the height's CometBFT header, with the app hash of the
//! height below as CometBFT's headers carry it, by every validator's real ed25519 key: a
//! [`LightBlock`] that CometBFT's light client verifies, so a child can follow this chain as
//! its parent ([`TestChain::light_block`]).

use std::path::Path;
use std::sync::Arc;

use ipsat_checkpoint::BlsSecretKey;
use ipsat_core::light::{BlockToSign, ChainSigner, LightBlock};
use ipsat_core::types::cometbft_address;
use ipsat_core::{Address, Amount, Hash32};

use crate::context::{
    BlockContext, ExtendedCommit, ExtendedVote, ValidatorAddress, ValidatorUpdate,
};
use crate::error::AppError;
use crate::genesis::GenesisValidator;
use crate::outcome::{CommittedBlock, FinalizedBlock, TxResult};
use crate::query::StateQuery;
use crate::store::Store;
use crate::SubnetApp;

/// Largest proposal the test chain builds, as CometBFT's default `max_bytes`.
const MAX_BLOCK_BYTES: usize = 4 * 1024 * 1024;

/// The test chain's genesis time (November 2023), in nanoseconds since the epoch.
const GENESIS_TIME_NANOS: i64 = 1_700_000_000_000_000_000;

/// Nanoseconds between blocks in the test chain's clock.
pub const BLOCK_INTERVAL_NANOS: i64 = 1_000_000_000;

/// Each test validator's CometBFT voting power in the signed headers.
const HEADER_POWER: u32 = 10;

/// The keys of test validator `index` of a chain seeded `seed`: deterministic, so a test can
/// write them into a genesis before the chain exists.
#[derive(Debug, Clone)]
pub struct TestKeys {
    /// Its CometBFT ed25519 secret key, which signs the chain's headers.
    pub cometbft_secret: [u8; 32],
    /// Its CometBFT ed25519 public key.
    pub cometbft_key: [u8; 32],
    /// Its BLS checkpoint signing key.
    pub bls: BlsSecretKey,
    /// Its account key; under the RSK gateway also its gateway signer.
    pub account_secret: secp256k1::SecretKey,
    /// Its account address.
    pub account: Address,
}

impl TestKeys {
    /// The keys of validator `index` of the chain seeded `seed`.
    pub fn new(seed: &str, index: usize) -> Self {
        let derive = |purpose: &str| -> [u8; 32] {
            let mut hasher = blake3::Hasher::new();
            hasher.update(seed.as_bytes());
            hasher.update(purpose.as_bytes());
            hasher.update(&(index as u64).to_be_bytes());
            *hasher.finalize().as_bytes()
        };
        let account_secret = secp256k1::SecretKey::from_slice(&derive("account"))
            .expect("32 hashed bytes are a valid secp256k1 key");
        let account =
            ipsat_core::tx::address_of(&account_secret.public_key(&secp256k1::Secp256k1::new()));
        let cometbft_secret = derive("cometbft");
        Self {
            cometbft_secret,
            cometbft_key: ipsat_core::light::ed25519_public_key(&cometbft_secret),
            bls: BlsSecretKey::from_seed(&derive("bls")).expect("32 bytes of key material"),
            account_secret,
            account,
        }
    }

    /// This validator as a genesis entry with `collateral`.
    pub fn genesis_validator(&self, collateral: Amount) -> GenesisValidator {
        GenesisValidator {
            address: self.account,
            cometbft_key: self.cometbft_key,
            bls_key: self.bls.public_key().to_compressed(),
            collateral,
        }
    }

    /// Its CometBFT address, as votes name it.
    pub fn cometbft_address(&self) -> ValidatorAddress {
        cometbft_address(&self.cometbft_key)
    }
}

/// The genesis validators of a chain of `count` seeded `seed`, sorted by address as
/// genesis requires, each with `collateral`.
pub fn genesis_validators(seed: &str, count: usize, collateral: Amount) -> Vec<GenesisValidator> {
    let mut validators: Vec<GenesisValidator> = (0..count)
        .map(|i| TestKeys::new(seed, i).genesis_validator(collateral))
        .collect();
    validators.sort_by_key(|v| v.address);
    validators
}

/// One validator of a [`TestChain`].
pub struct TestValidator {
    /// Its CometBFT address.
    pub address: ValidatorAddress,
    /// Its state machine, shared as a node shares it with its services.
    pub app: Arc<SubnetApp>,
    /// Queries over its store.
    pub query: StateQuery,
}

/// A subnet of in-process validators; see the module documentation.
pub struct TestChain {
    validators: Vec<TestValidator>,
    last_commit: ExtendedCommit,
    signer: ChainSigner,
    /// The time of the next block, in nanoseconds since the epoch.
    next_time_unix_nanos: i64,
    /// The signed header of every height, from 1.
    light_blocks: Vec<LightBlock>,
    /// The validator updates each height handed CometBFT, from 1.
    validator_updates: Vec<Vec<ValidatorUpdate>>,
}

/// A failure of the flow: an app error, or validators that disagree.
#[derive(Debug, thiserror::Error)]
pub enum TestChainError {
    /// A validator's app failed.
    #[error("validator {validator}: {source}")]
    App {
        /// Its index.
        validator: usize,
        /// What failed.
        source: AppError,
    },
    /// A validator rejected the proposal of an honest proposer.
    #[error("validator {validator} rejected the proposal at height {height}")]
    ProposalRejected {
        /// Its index.
        validator: usize,
        /// The height.
        height: u64,
    },
    /// A validator refused another's vote extension.
    #[error("validator {verifier} refused the vote extension of validator {signer}")]
    ExtensionRefused {
        /// Who verified.
        verifier: usize,
        /// Whose extension it was.
        signer: usize,
    },
    /// Validators computed different app hashes for the same block.
    #[error("app hashes differ at height {height}: {hashes:?}")]
    Diverged {
        /// The height.
        height: u64,
        /// Each validator's app hash, hex.
        hashes: Vec<String>,
    },
}

fn app_error(validator: usize) -> impl Fn(AppError) -> TestChainError {
    move |source| TestChainError::App { validator, source }
}

impl TestChain {
    /// Opens `count` validators with stores under `dir`, each with the keys
    /// [`TestKeys::new`]`(seed, i)`, and runs InitChain on each with the genesis `app_state`.
    pub fn new(
        dir: &Path,
        seed: &str,
        count: usize,
        app_state: &[u8],
    ) -> Result<Self, TestChainError> {
        let mut validators = Vec::with_capacity(count);
        let mut secrets = Vec::with_capacity(count);
        for i in 0..count {
            let keys = TestKeys::new(seed, i);
            secrets.push(keys.cometbft_secret);
            let store = Store::open(&dir.join(format!("validator{i}")))
                .map_err(|e| app_error(i)(e.into()))?;
            let store = Arc::new(store);
            let app = SubnetApp::open(store.clone())
                .map_err(app_error(i))?
                .with_checkpoint_signer(keys.bls.clone())
                .with_gateway_signer(keys.account_secret);
            let app = Arc::new(app);
            app.init_chain(app_state).map_err(app_error(i))?;
            validators.push(TestValidator {
                address: keys.cometbft_address(),
                app,
                query: StateQuery::new(store),
            });
        }
        let signer = ChainSigner::new(&format!("test-{seed}"), secrets, HEADER_POWER)
            .expect("test keys and chain id are valid");
        let chain = Self {
            validators,
            last_commit: ExtendedCommit::default(),
            signer,
            next_time_unix_nanos: GENESIS_TIME_NANOS + BLOCK_INTERVAL_NANOS,
            light_blocks: Vec::new(),
            validator_updates: Vec::new(),
        };
        chain.same_app_hash(0)?;
        Ok(chain)
    }

    /// The validators, e.g. to query one.
    pub fn validators(&self) -> &[TestValidator] {
        &self.validators
    }

    /// The CometBFT chain id of the signed headers: `test-<seed>`.
    pub fn chain_id(&self) -> &str {
        self.signer.chain_id()
    }

    /// The signed header of `height` with the validator sets, as CometBFT's RPC serves it.
    pub fn light_block(&self, height: u64) -> Option<&LightBlock> {
        let index = usize::try_from(height.checked_sub(1)?).ok()?;
        self.light_blocks.get(index)
    }

    /// The validator power changes the block at `height` handed CometBFT (this test chain's
    /// own validators do not change: a test reads what a real network would do).
    pub fn validator_updates(&self, height: u64) -> &[ValidatorUpdate] {
        usize::try_from(height.saturating_sub(1))
            .ok()
            .and_then(|index| self.validator_updates.get(index))
            .map_or(&[], Vec::as_slice)
    }

    /// The time the next block will have, in nanoseconds since the epoch.
    pub fn next_time_unix_nanos(&self) -> i64 {
        self.next_time_unix_nanos
    }

    /// Moves this chain's clock so the next block has time `unix_nanos` (later blocks follow
    /// one second apart), e.g. to keep a child's clock with its parent's or to let a trusting
    /// period lapse. Block times never go backwards.
    pub fn set_next_time(&mut self, unix_nanos: i64) {
        self.next_time_unix_nanos = self.next_time_unix_nanos.max(unix_nanos);
    }

    /// The last committed height.
    pub fn height(&self) -> u64 {
        self.committed(0).map(|c| c.0).unwrap_or_default()
    }

    /// The last committed app hash (equal on every validator).
    pub fn app_hash(&self) -> Hash32 {
        self.committed(0).map(|c| c.1).unwrap_or_default()
    }

    fn committed(&self, validator: usize) -> Option<(u64, Hash32)> {
        let committed = self.validators[validator].app.last_committed().ok()??;
        Some((committed.height, committed.app_hash))
    }

    fn same_app_hash(&self, height: u64) -> Result<Hash32, TestChainError> {
        let hashes: Vec<Option<(u64, Hash32)>> = (0..self.validators.len())
            .map(|i| self.committed(i))
            .collect();
        match hashes.first() {
            Some(Some((h, hash))) if *h == height && hashes.iter().all(|x| *x == hashes[0]) => {
                Ok(*hash)
            }
            _ => Err(TestChainError::Diverged {
                height,
                hashes: hashes
                    .iter()
                    .map(|c| c.map(|(_, hash)| hex::encode(hash)).unwrap_or_default())
                    .collect(),
            }),
        }
    }

    /// Sends `raw` to every validator's mempool; the results of validator 0.
    pub fn check_tx(&self, raw: &[u8]) -> Result<TxResult, TestChainError> {
        let mut first = None;
        for (i, validator) in self.validators.iter().enumerate() {
            let result = validator.app.check_tx(raw).map_err(app_error(i))?;
            first.get_or_insert(result);
        }
        Ok(first.expect("a test chain has at least one validator"))
    }

    /// The votes the next proposer will read as `local_last_commit`, for tests that play a
    /// late or lying precommit.
    pub fn last_commit_mut(&mut self) -> &mut ExtendedCommit {
        &mut self.last_commit
    }

    /// Runs one height whose proposer offers `txs` (as its mempool would) and returns what
    /// validator 0 committed.
    pub fn block(&mut self, txs: &[Vec<u8>]) -> Result<CommittedBlock, TestChainError> {
        self.block_with(txs, |_| {})
    }

    /// Runs one height like [`Self::block`], with `edit` applied to the proposal after
    /// PrepareProposal, as a faulty or malicious proposer would.
    pub fn block_with(
        &mut self,
        txs: &[Vec<u8>],
        edit: impl FnOnce(&mut Vec<Vec<u8>>),
    ) -> Result<CommittedBlock, TestChainError> {
        let height = self.height() + 1;
        let app_hash_before = self.app_hash();
        let proposer = (height as usize) % self.validators.len();
        let time_unix_nanos = self.next_time_unix_nanos;
        let mut context = BlockContext {
            height,
            time_unix_nanos,
            proposer: self.validators[proposer].address,
            block_hash: Vec::new(),
        };
        let mut proposal = self.validators[proposer]
            .app
            .prepare_proposal(&context, &self.last_commit, txs.to_vec(), MAX_BLOCK_BYTES)
            .map_err(app_error(proposer))?;
        edit(&mut proposal);
        context.block_hash = block_hash(height, &proposal);
        for (i, validator) in self.validators.iter().enumerate() {
            if !validator.app.process_proposal(&context, &proposal) {
                return Err(TestChainError::ProposalRejected {
                    validator: i,
                    height,
                });
            }
        }
        let extensions: Vec<Vec<u8>> = self
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| v.app.extend_vote(&context).map_err(app_error(i)))
            .collect::<Result<_, _>>()?;
        for (signer, extension) in extensions.iter().enumerate() {
            let address = self.validators[signer].address;
            for (verifier, validator) in self.validators.iter().enumerate() {
                if verifier != signer
                    && validator
                        .app
                        .verify_vote_extension(&address, extension)
                        .is_err()
                {
                    return Err(TestChainError::ExtensionRefused { verifier, signer });
                }
            }
        }
        let finalized: Vec<FinalizedBlock> = self
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.app
                    .finalize_block(&context, &proposal)
                    .map_err(app_error(i))
            })
            .collect::<Result<_, _>>()?;
        if finalized
            .iter()
            .any(|f| f.app_hash != finalized[0].app_hash)
        {
            return Err(TestChainError::Diverged {
                height,
                hashes: finalized.iter().map(|f| hex::encode(f.app_hash)).collect(),
            });
        }
        self.validator_updates
            .push(finalized[0].effects.validator_updates.clone());
        let mut committed = None;
        for (i, validator) in self.validators.iter().enumerate() {
            let block = validator.app.commit().map_err(app_error(i))?;
            committed.get_or_insert(block);
        }
        self.same_app_hash(height)?;
        let light_block = self
            .signer
            .sign(
                BlockToSign {
                    height,
                    time_unix_nanos,
                    app_hash: &app_hash_before,
                    seed: &context.block_hash,
                    proposer,
                },
                self.light_blocks.last(),
            )
            .expect("the test chain's headers are well formed");
        self.light_blocks.push(light_block);
        self.next_time_unix_nanos = time_unix_nanos + BLOCK_INTERVAL_NANOS;
        self.last_commit = ExtendedCommit {
            round: 0,
            votes: self
                .validators
                .iter()
                .zip(extensions)
                .map(|(v, extension)| ExtendedVote {
                    validator: v.address,
                    power: 1,
                    committed: true,
                    extension,
                })
                .collect(),
        };
        Ok(committed.expect("a test chain has at least one validator"))
    }

    /// Runs a height and returns each transaction's result code.
    pub fn block_codes(&mut self, txs: &[Vec<u8>]) -> Result<Vec<u32>, TestChainError> {
        Ok(self.block(txs)?.tx_results.iter().map(|r| r.code).collect())
    }
}

/// A stand-in for CometBFT's block hash: the height and the transactions, hashed.
fn block_hash(height: u64, txs: &[Vec<u8>]) -> Vec<u8> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&height.to_be_bytes());
    for tx in txs {
        hasher.update(&(tx.len() as u64).to_be_bytes());
        hasher.update(tx);
    }
    hasher.finalize().as_bytes().to_vec()
}
