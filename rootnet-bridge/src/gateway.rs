//! The gateway client: deploys `IpsatGateway` and calls it with legacy transactions it signs
//! itself, tracking its own nonce and replacing a stuck transaction at +40% gas price.

use std::time::{Duration, Instant};

use alloy::consensus::{SignableTransaction, TxEnvelope, TxLegacy};
use alloy::eips::eip2718::Encodable2718;
use alloy::primitives::{keccak256, Address, Bytes, TxKind, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use alloy::sol_types::{SolCall, SolEvent, SolInterface, SolValue};
use thiserror::Error;
use tokio::sync::Mutex;

use crate::contract::{creation_bytecode, IpsatGateway};
use crate::rpc::{EthRpc, Receipt, RpcError};

/// RSK refuses `eth_getLogs` over more than this many blocks.
pub const RSK_MAX_LOG_RANGE: u64 = 5_000;

/// A failed gateway operation; where present, `call` names the operation or contract call.
#[derive(Debug, Error)]
#[allow(missing_docs)] // Each variant's message says what it means.
pub enum BridgeError {
    #[error("{call}: {source}")]
    Rpc {
        call: &'static str,
        #[source]
        source: RpcError,
    },
    #[error("{call} reverted: {reason}")]
    Reverted { call: &'static str, reason: String },
    #[error("{call}: transaction {hash} not mined within {waited:?}")]
    NotMined {
        call: &'static str,
        hash: B256,
        waited: Duration,
    },
    #[error("connected to chain id {got}, configured for {expected}")]
    WrongChain { expected: u64, got: u64 },
    #[error("{call}: cannot decode the result: {detail}")]
    Decode { call: &'static str, detail: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{call}: signing: {detail}")]
    Signing { call: &'static str, detail: String },
}

/// Turns revert data into the contract's named error, e.g. `WrongHeight(expected: 20, got: 30)`.
pub fn decode_revert(data: &[u8]) -> String {
    match IpsatGateway::IpsatGatewayErrors::abi_decode(data) {
        Ok(error) => format!("{error:?}"),
        Err(_) if data.is_empty() => "no revert data".to_owned(),
        Err(_) => format!("undecoded revert data 0x{}", hex::encode(data)),
    }
}

fn rpc_error(call: &'static str, source: RpcError) -> BridgeError {
    if let RpcError::Node {
        data: Some(data), ..
    } = &source
    {
        if !data.is_empty() {
            return BridgeError::Reverted {
                call,
                reason: decode_revert(data),
            };
        }
    }
    BridgeError::Rpc { call, source }
}

/// How the client talks to RSK: expected chain, finality depth, log spans, gas price and timeouts.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The chain id the node must report (30 mainnet, 31 testnet, 33 regtest).
    pub chain_id: u64,
    /// Blocks on top before an event or state counts as final (RSK has no finality tag).
    pub confirmations: u64,
    /// Block span of one `eth_getLogs` request; at most [`RSK_MAX_LOG_RANGE`].
    pub log_range: u64,
    /// Fixed gas price in wei; `None` asks the node (`eth_gasPrice`).
    pub gas_price: Option<u128>,
    /// A transaction not mined after this long is replaced at +40% gas price.
    pub replace_after: Duration,
    /// Give up waiting for a receipt after this long.
    pub receipt_timeout: Duration,
    /// Pause between receipt polls while waiting for a transaction to be mined.
    pub poll_interval: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            chain_id: 33,
            confirmations: 12,
            log_range: 1_000,
            gas_price: None,
            replace_after: Duration::from_secs(60),
            receipt_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_millis(250),
        }
    }
}

/// The keys a validator registers besides its signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinKeys {
    /// Compressed BLS12-381 G1 public key, 48 bytes.
    pub bls_public_key: Bytes,
    /// Its proof of possession, 96 bytes.
    pub bls_pop: Bytes,
    /// The CometBFT ed25519 consensus key.
    pub cometbft_key: B256,
}

/// A deposit locked by `fund`, as the subnet imports it top-down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundedEvent {
    /// Subnet the deposit is for.
    pub subnet_id: B256,
    /// Account in the subnet that receives the deposit.
    pub recipient: Address,
    /// Deposited RBTC, in wei.
    pub amount: U256,
    /// Per-subnet deposit sequence number (0, 1, 2, ...), the order the subnet imports them in.
    pub nonce: u64,
    /// RSK block holding the `Funded` log (0 if the node did not report it).
    pub block_number: u64,
}

/// Client of one deployed `IpsatGateway`: sends legacy transactions from one signer, one at a
/// time, with a locally tracked nonce.
pub struct Gateway {
    rpc: EthRpc,
    signer: PrivateKeySigner,
    address: Address,
    config: GatewayConfig,
    next_nonce: Mutex<Option<u64>>,
}

/// What a validator's checkpoint signer signs (raw, no EIP-191 prefix) to let `owner` join
/// `subnet_id` on the gateway at `gateway` on chain `chain_id`, as the contract's `joinDigest`.
pub fn join_digest(chain_id: u64, gateway: Address, subnet_id: B256, owner: Address) -> B256 {
    keccak256(
        (
            keccak256("ipsat/join/v1"),
            U256::from(chain_id),
            gateway,
            subnet_id,
            owner,
        )
            .abi_encode_params(),
    )
}

/// Replacement gas price: at least +40%, as RSK requires to replace a pending transaction.
pub fn bumped_gas_price(price: u128) -> u128 {
    price.saturating_mul(14).div_ceil(10).max(price + 1)
}

impl Gateway {
    async fn check_chain(rpc: &EthRpc, config: &GatewayConfig) -> Result<(), BridgeError> {
        if config.log_range == 0 || config.log_range > RSK_MAX_LOG_RANGE {
            return Err(BridgeError::Config(format!(
                "log_range must be 1..={RSK_MAX_LOG_RANGE}"
            )));
        }
        let got = rpc.chain_id().await.map_err(|source| BridgeError::Rpc {
            call: "chain id",
            source,
        })?;
        if got != config.chain_id {
            return Err(BridgeError::WrongChain {
                expected: config.chain_id,
                got,
            });
        }
        Ok(())
    }

    /// A client for the gateway already deployed at `address`.
    pub async fn at(
        url: &str,
        address: Address,
        signer: PrivateKeySigner,
        config: GatewayConfig,
    ) -> Result<Self, BridgeError> {
        let rpc = EthRpc::new(url);
        Self::check_chain(&rpc, &config).await?;
        Ok(Self {
            rpc,
            signer,
            address,
            config,
            next_nonce: Mutex::new(None),
        })
    }

    /// Deploys a new gateway whose `anchorer` may record Bitcoin anchors and where registering a
    /// subnet costs `registration_deposit` wei until it ends.
    pub async fn deploy(
        url: &str,
        signer: PrivateKeySigner,
        config: GatewayConfig,
        anchorer: Address,
        registration_deposit: U256,
    ) -> Result<Self, BridgeError> {
        let mut gateway = Self::at(url, Address::ZERO, signer, config).await?;
        let mut code = creation_bytecode().to_vec();
        code.extend_from_slice(&SolValue::abi_encode_params(&(
            anchorer,
            registration_deposit,
        )));
        let receipt = gateway
            .send("deploy", TxKind::Create, code.into(), U256::ZERO)
            .await?;
        let hash = receipt.transaction_hash;
        let created: Option<Address> = gateway
            .rpc
            .call("eth_getTransactionReceipt", serde_json::json!([hash]))
            .await
            .ok()
            .and_then(|r: serde_json::Value| r["contractAddress"].as_str()?.parse().ok());
        gateway.address = created.ok_or(BridgeError::Decode {
            call: "deploy",
            detail: "receipt has no contract address".into(),
        })?;
        Ok(gateway)
    }

    /// The gateway contract's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Address of the signing key, which sends every transaction.
    pub fn sender(&self) -> Address {
        self.signer.address()
    }

    async fn gas_price(&self, call: &'static str) -> Result<u128, BridgeError> {
        match self.config.gas_price {
            Some(price) => Ok(price),
            None => self
                .rpc
                .gas_price()
                .await
                .map(|p| p.max(1))
                .map_err(|source| BridgeError::Rpc { call, source }),
        }
    }

    /// Signs and sends one legacy transaction and waits for its receipt, replacing it at +40%
    /// gas price each time it stays unmined for `replace_after`. A revert is an error naming
    /// the contract's custom error.
    async fn send(
        &self,
        call: &'static str,
        to: TxKind,
        input: Bytes,
        value: U256,
    ) -> Result<Receipt, BridgeError> {
        let to_address = match to {
            TxKind::Call(address) => Some(address),
            TxKind::Create => None,
        };
        // Estimating first turns a revert into its named error before anything is signed.
        let estimate = self
            .rpc
            .estimate_gas(self.sender(), to_address, value, &input)
            .await
            .map_err(|e| rpc_error(call, e))?;
        let gas_limit = estimate.saturating_mul(5) / 4 + 10_000;
        let mut nonce_guard = self.next_nonce.lock().await;
        let nonce = match *nonce_guard {
            Some(n) => n,
            None => self
                .rpc
                .pending_nonce(self.sender())
                .await
                .map_err(|source| BridgeError::Rpc { call, source })?,
        };
        let mut tx = TxLegacy {
            chain_id: Some(self.config.chain_id),
            nonce,
            gas_price: self.gas_price(call).await?,
            gas_limit,
            to,
            value,
            input,
        };
        let started = Instant::now();
        let mut hashes = Vec::new();
        loop {
            let signature = self
                .signer
                .sign_hash_sync(&tx.signature_hash())
                .map_err(|e| BridgeError::Config(format!("signing failed: {e}")))?;
            let raw = TxEnvelope::from(tx.clone().into_signed(signature)).encoded_2718();
            match self.rpc.send_raw_transaction(&raw).await {
                Ok(hash) => {
                    tracing::debug!(call, %hash, nonce, gas_price = tx.gas_price, "sent");
                    hashes.push(hash);
                }
                Err(error) => {
                    // A node that already holds one of our versions may refuse the same one.
                    if hashes.is_empty() {
                        *nonce_guard = None;
                        return Err(rpc_error(call, error));
                    }
                    tracing::warn!(call, %error, "replacement refused; still waiting for the earlier one");
                }
            }
            *nonce_guard = Some(nonce + 1);
            let round_started = Instant::now();
            while round_started.elapsed() < self.config.replace_after {
                for hash in &hashes {
                    let receipt = self
                        .rpc
                        .receipt(*hash)
                        .await
                        .map_err(|source| BridgeError::Rpc { call, source })?;
                    if let Some(receipt) = receipt {
                        return self.settle(call, receipt).await;
                    }
                }
                if started.elapsed() > self.config.receipt_timeout {
                    return Err(BridgeError::NotMined {
                        call,
                        hash: *hashes.last().unwrap_or(&B256::ZERO),
                        waited: started.elapsed(),
                    });
                }
                tokio::time::sleep(self.config.poll_interval).await;
            }
            tx.gas_price = bumped_gas_price(tx.gas_price);
            tracing::info!(
                call,
                nonce,
                gas_price = tx.gas_price,
                "not mined yet; replacing at +40% gas price"
            );
        }
    }

    /// A mined transaction. Reverts are normally caught by the estimate before sending; one
    /// that still failed on chain (the state changed in between) is reported by its hash,
    /// since receipts carry no revert data.
    async fn settle(&self, call: &'static str, receipt: Receipt) -> Result<Receipt, BridgeError> {
        if receipt.succeeded() {
            return Ok(receipt);
        }
        Err(BridgeError::Reverted {
            call,
            reason: format!("transaction {} failed on chain", receipt.transaction_hash),
        })
    }

    /// Sends any gateway call as a transaction (the typed methods below cover the usual ones).
    pub async fn transact<C: SolCall>(
        &self,
        call_name: &'static str,
        call: &C,
        value: U256,
    ) -> Result<Receipt, BridgeError> {
        self.send(
            call_name,
            TxKind::Call(self.address),
            call.abi_encode().into(),
            value,
        )
        .await
    }

    /// Calls any gateway view at `block` (latest when `None`).
    pub async fn view<C: SolCall>(
        &self,
        call_name: &'static str,
        call: &C,
        block: Option<u64>,
    ) -> Result<C::Return, BridgeError> {
        let output = self
            .rpc
            .eth_call(self.address, &call.abi_encode().into(), block)
            .await
            .map_err(|e| rpc_error(call_name, e))?;
        C::abi_decode_returns(&output).map_err(|e| BridgeError::Decode {
            call: call_name,
            detail: e.to_string(),
        })
    }

    /// Registers a level-1 subnet, paying the gateway's registration deposit (refunded by
    /// [`Self::claim_registration_deposit`] once the subnet has ended); returns its id,
    /// `keccak256("/r<chain>/<name>")`.
    pub async fn register_subnet(
        &self,
        name: &str,
        min_validators: u64,
        min_collateral: U256,
        checkpoint_period: u64,
    ) -> Result<B256, BridgeError> {
        let call = IpsatGateway::registerSubnetCall {
            name: name.to_owned(),
            minValidators: min_validators,
            minCollateral: min_collateral,
            checkpointPeriod: checkpoint_period,
        };
        let deposit = self
            .view(
                "registrationDeposit",
                &IpsatGateway::registrationDepositCall {},
                None,
            )
            .await?;
        self.transact("registerSubnet", &call, deposit).await?;
        self.view(
            "computeSubnetId",
            &IpsatGateway::computeSubnetIdCall {
                name: name.to_owned(),
            },
            None,
        )
        .await
    }

    /// Joins `subnet_id` as a validator staking `collateral` wei (its power), owned by this
    /// client's sender: `ecdsa_signer` signs its checkpoints and authorises the join by signing
    /// [`join_digest`] (computed here, not asked of the node); the BLS key (48 bytes) and proof
    /// of possession (96 bytes) are only length-checked on chain (the subnet's nodes verify
    /// the proof), and `cometbft_key` is its ed25519 consensus key.
    pub async fn join(
        &self,
        subnet_id: B256,
        ecdsa_signer: &PrivateKeySigner,
        keys: JoinKeys,
        collateral: U256,
    ) -> Result<Receipt, BridgeError> {
        let digest = join_digest(self.config.chain_id, self.address, subnet_id, self.sender());
        let signature = ecdsa_signer
            .sign_hash_sync(&digest)
            .map_err(|e| BridgeError::Signing {
                call: "join",
                detail: e.to_string(),
            })?;
        let call = IpsatGateway::joinCall {
            subnetId: subnet_id,
            request: IpsatGateway::JoinRequest {
                ecdsaSigner: ecdsa_signer.address(),
                signerSignature: signature.as_bytes().to_vec().into(),
                blsPublicKey: keys.bls_public_key,
                blsPop: keys.bls_pop,
                cometbftKey: keys.cometbft_key,
            },
        };
        self.transact("join", &call, collateral).await
    }

    /// Takes the sender's validator out of `subnet_id` (`leaveSubnet`); its collateral becomes
    /// claimable once a checkpoint confirms a validator set from after it left.
    pub async fn leave(&self, subnet_id: B256) -> Result<Receipt, BridgeError> {
        let call = IpsatGateway::leaveSubnetCall {
            subnetId: subnet_id,
        };
        self.transact("leaveSubnet", &call, U256::ZERO).await
    }

    /// Pays back the collateral of the sender's validator that left `subnet_id`; reverts with
    /// `CollateralLocked` until a checkpoint confirms its departure.
    pub async fn claim_collateral(&self, subnet_id: B256) -> Result<Receipt, BridgeError> {
        let call = IpsatGateway::claimCollateralCall {
            subnetId: subnet_id,
        };
        self.transact("claimCollateral", &call, U256::ZERO).await
    }

    /// Locks `amount` wei of RBTC for `recipient` in `subnet_id`; the subnet mints it when it
    /// imports the resulting [`FundedEvent`].
    pub async fn fund(
        &self,
        subnet_id: B256,
        recipient: Address,
        amount: U256,
    ) -> Result<Receipt, BridgeError> {
        let call = IpsatGateway::fundCall {
            subnetId: subnet_id,
            recipient,
        };
        self.transact("fund", &call, amount).await
    }

    /// The digest validators sign for `checkpoint` (domain: chain id and this gateway).
    pub async fn checkpoint_digest(
        &self,
        checkpoint: &IpsatGateway::Checkpoint,
    ) -> Result<B256, BridgeError> {
        let call = IpsatGateway::checkpointDigestCall {
            cp: checkpoint.clone(),
        };
        self.view("checkpointDigest", &call, None).await
    }

    /// Submits a checkpoint with 65-byte signatures of `signers` (ascending), against the
    /// confirmed validator set `validators`/`powers`.
    pub async fn submit_checkpoint(
        &self,
        checkpoint: &IpsatGateway::Checkpoint,
        validators: Vec<Address>,
        powers: Vec<U256>,
        signatures: Bytes,
    ) -> Result<Receipt, BridgeError> {
        let call = IpsatGateway::submitCheckpointCall {
            subnetId: checkpoint.subnetId,
            cp: checkpoint.clone(),
            validators,
            powers,
            signatures,
        };
        self.transact("submitCheckpoint", &call, U256::ZERO).await
    }

    /// Ends the subnet of `checkpoint` with it as its final checkpoint, signed over
    /// `killDigest(checkpoint)` by the confirmed set (arguments as [`Self::submit_checkpoint`]).
    pub async fn kill_subnet(
        &self,
        checkpoint: &IpsatGateway::Checkpoint,
        validators: Vec<Address>,
        powers: Vec<U256>,
        signatures: Bytes,
    ) -> Result<Receipt, BridgeError> {
        let call = IpsatGateway::killSubnetCall {
            subnetId: checkpoint.subnetId,
            cp: checkpoint.clone(),
            validators,
            powers,
            signatures,
        };
        self.transact("killSubnet", &call, U256::ZERO).await
    }

    /// Pays this client's sender back the registration deposit of `subnet_id`, which it
    /// registered and which has ended.
    pub async fn claim_registration_deposit(
        &self,
        subnet_id: B256,
    ) -> Result<Receipt, BridgeError> {
        let call = IpsatGateway::claimRegistrationDepositCall {
            subnetId: subnet_id,
        };
        self.transact("claimRegistrationDeposit", &call, U256::ZERO)
            .await
    }

    /// Pays out `release`, proven by `proof` (see [`crate::merkle::proof`]) against the
    /// cross-message root of `subnet_id`'s accepted checkpoint at `checkpoint_height`; each
    /// release pays at most once.
    pub async fn execute_release(
        &self,
        subnet_id: B256,
        checkpoint_height: u64,
        release: IpsatGateway::Release,
        proof: Vec<B256>,
    ) -> Result<Receipt, BridgeError> {
        let call = IpsatGateway::executeReleaseCall {
            subnetId: subnet_id,
            checkpointHeight: checkpoint_height,
            r: release,
            proof,
        };
        self.transact("executeRelease", &call, U256::ZERO).await
    }

    /// Records that `blocktree_root`, read at RSK height `rsk_height`, was anchored in Bitcoin
    /// transaction `btc_txid` (internal byte order) confirmed at `btc_height`; only the
    /// gateway's anchorer may call it.
    pub async fn record_anchor(
        &self,
        blocktree_root: B256,
        rsk_height: u64,
        btc_txid: B256,
        btc_height: u64,
    ) -> Result<Receipt, BridgeError> {
        let call = IpsatGateway::recordAnchorCall {
            root: blocktree_root,
            rskHeight: rsk_height,
            btcTxid: btc_txid,
            btcHeight: btc_height,
        };
        self.transact("recordAnchor", &call, U256::ZERO).await
    }

    /// The highest block with `confirmations` blocks on top of it.
    pub async fn final_height(&self) -> Result<u64, BridgeError> {
        let head = self
            .rpc
            .block_number()
            .await
            .map_err(|source| BridgeError::Rpc {
                call: "block number",
                source,
            })?;
        Ok(head.saturating_sub(self.config.confirmations))
    }

    /// `blocktreeRoot()` at `block`, or at the latest final block when `None`.
    pub async fn blocktree_root(&self, block: Option<u64>) -> Result<B256, BridgeError> {
        let block = match block {
            Some(b) => b,
            None => self.final_height().await?,
        };
        self.view(
            "blocktreeRoot",
            &IpsatGateway::blocktreeRootCall {},
            Some(block),
        )
        .await
    }

    /// The confirmed validator set hash and its configuration number.
    pub async fn confirmed_validator_set(
        &self,
        subnet_id: B256,
    ) -> Result<(B256, u64), BridgeError> {
        let r = self
            .view(
                "confirmedValidatorSet",
                &IpsatGateway::confirmedValidatorSetCall {
                    subnetId: subnet_id,
                },
                None,
            )
            .await?;
        Ok((r.setHash, r.configurationNumber))
    }

    /// Deposits into `subnet_id` between `from` and the latest final block, read in spans of
    /// at most `log_range` blocks.
    pub async fn funded_events(
        &self,
        subnet_id: B256,
        from: u64,
    ) -> Result<Vec<FundedEvent>, BridgeError> {
        let to = self.final_height().await?;
        self.funded_events_between(subnet_id, from, to).await
    }

    /// The `Funded` events for `subnet_id` in blocks `from..=to`, read in bounded ranges.
    pub async fn funded_events_between(
        &self,
        subnet_id: B256,
        from: u64,
        to: u64,
    ) -> Result<Vec<FundedEvent>, BridgeError> {
        let mut events = Vec::new();
        let mut start = from;
        while start <= to {
            let end = to.min(start + self.config.log_range - 1);
            let logs = self
                .rpc
                .logs(
                    self.address,
                    IpsatGateway::Funded::SIGNATURE_HASH,
                    Some(subnet_id),
                    start,
                    end,
                )
                .await
                .map_err(|source| BridgeError::Rpc {
                    call: "eth_getLogs Funded",
                    source,
                })?;
            for log in logs {
                let event =
                    IpsatGateway::Funded::decode_raw_log(log.topics.iter().copied(), &log.data)
                        .map_err(|e| BridgeError::Decode {
                            call: "Funded event",
                            detail: e.to_string(),
                        })?;
                events.push(FundedEvent {
                    subnet_id: event.subnetId,
                    recipient: event.recipient,
                    amount: event.amount,
                    nonce: event.nonce,
                    block_number: log.block_number.map_or(0, |n| n.to::<u64>()),
                });
            }
            start = end + 1;
        }
        Ok(events)
    }

    /// The underlying JSON-RPC client, for calls the typed methods do not cover.
    pub fn rpc(&self) -> &EthRpc {
        &self.rpc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_price_is_at_least_forty_percent_higher() {
        for price in [1u128, 2, 7, 10, 59_240_000, 1_000_000_000_000] {
            let bumped = bumped_gas_price(price);
            assert!(bumped * 10 >= price * 14, "{price} -> {bumped}");
        }
    }

    #[test]
    fn custom_errors_decode_by_name() {
        let error = IpsatGateway::WrongHeight {
            expected: 20,
            got: 30,
        };
        let data = alloy::sol_types::SolError::abi_encode(&error);
        let text = decode_revert(&data);
        assert!(
            text.contains("WrongHeight") && text.contains("20") && text.contains("30"),
            "{text}"
        );
        assert!(decode_revert(&[1, 2, 3, 4]).contains("undecoded"));
    }
}
