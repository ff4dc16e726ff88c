//! `ipsat testnet tree`: the whole blocktree for a devnet, set up through the same commands an
//! operator runs, against an RSK node and a Bitcoin node that already run: the gateway
//! deployed, a level-1 subnet `alpha` of four validators joined on RSK, a level-2 subnet `beta`
//! of three created and joined in alpha, and the anchoring service's home.
//!
//! It only writes homes. Whoever runs the processes (`scripts/devnet`, or compose) starts each
//! one once its home holds a `.ready` file, which is why alpha's homes are ready long before
//! beta's: beta is created by transactions in a running alpha. `ipsat testnet status` prints
//! what the explorer sees of the running tree.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use ipsat_anchor::RpcClient;
use ipsat_core::Address;
use ipsat_proto::v1 as pb;
use ipsat_rootnet_bridge::{Gateway, GatewayConfig, IpsatGateway};
use serde_json::{json, Value};

use super::{print, Output};
use crate::child_home;
use crate::client::Client;
use crate::config::{ChildEndpoint, Config};
use crate::explorer::tree::TreeView;
use crate::keys;

/// anvil's first dev account, which deploys the gateway and is its admin. Devnet only: anvil
/// funds it at start, and its key is public.
const RSK_ADMIN_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// Blocks on top before an RSK block counts as final in the devnet (anvil mines one a second).
const RSK_CONFIRMATIONS: u64 = 2;
/// Subnet blocks between checkpoints, in both levels.
const CHECKPOINT_PERIOD: u64 = 10;
/// Each validator's collateral, wei: 10 of power.
const COLLATERAL: u128 = 10_000_000_000;
const RBTC: u128 = 1_000_000_000_000_000_000;
/// btcd activates segwit on regtest by signalling; anchors need it (measured: active at 432).
const SEGWIT_ACTIVE_HEIGHT: u64 = 432;
/// How long any one wait may make no progress before the setup gives up.
const PATIENCE: Duration = Duration::from_secs(300);

/// The anchoring service's period and confirmations in the devnet.
const ANCHOR_PERIOD_RSK_BLOCKS: u64 = 10;
const ANCHOR_CONFIRMATIONS: u32 = 2;
/// Anchoring lag past which the devnet reports a stall. Three periods plus two confirmations
/// at the devnet's 5 RSK blocks per Bitcoin block (anvil mines every second, the miner every
/// 5 s) is 40; both run on wall-clock time on a shared machine, so the devnet allows 60.
const DEVNET_ANCHOR_STALL_RSK_BLOCKS: u64 = 60;
/// Where the devnet's anchoring service serves its metrics.
const ANCHOR_METRICS_PORT: u16 = 9480;
const LEVEL_ONE: &str = "alpha";
const LEVEL_TWO: &str = "beta";

#[derive(Args)]
pub struct TreeArgs {
    /// Directory to create: validator homes alpha<i> and beta<i>, the anchoring service's home
    /// `anchor`, and the client's keys.
    #[arg(long)]
    pub output_dir: PathBuf,
    /// RSK JSON-RPC (anvil in the devnet), as every node reaches it.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    pub rsk: String,
    /// Bitcoin JSON-RPC (btcd regtest, started with `-C <dir>/anchor/btcd.conf`, which names
    /// the address it mines to).
    #[arg(long, default_value = "http://127.0.0.1:18334")]
    pub bitcoin_rpc: String,
    #[arg(long, default_value = "ipsat")]
    pub bitcoin_user: String,
    #[arg(long, default_value = "ipsat")]
    pub bitcoin_password: String,
    /// Hosts the four alpha validators are reached at, in order (default: all 127.0.0.1).
    #[arg(long, value_delimiter = ',')]
    pub alpha_hosts: Vec<String>,
    /// Hosts the three beta validators are reached at, in order (default: all 127.0.0.1).
    #[arg(long, value_delimiter = ',')]
    pub beta_hosts: Vec<String>,
    /// Address the nodes' listeners bind (0.0.0.0 in containers).
    #[arg(long, default_value = "127.0.0.1")]
    pub listen_address: std::net::IpAddr,
    /// Port of the explorer alpha0 serves.
    #[arg(long, default_value_t = 8080)]
    pub explorer_port: u16,
    /// CometBFT's consensus.timeout_commit in both subnets.
    #[arg(long, default_value = "500ms")]
    pub timeout_commit: String,
    /// The cometbft executable.
    #[arg(long, env = "IPSAT_COMETBFT", default_value = "cometbft")]
    pub cometbft: PathBuf,
}

#[derive(Args)]
pub struct StatusArgs {
    /// The explorer of a node of the tree.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub explorer: String,
}

/// Where validator `i` of a level listens: CometBFT on `base + 10 i` plus 5 (metrics), 6
/// (P2P), 7 (RPC), 8 (ABCI); gRPC `grpc + i`; metrics `metrics + i`.
struct Level {
    name: &'static str,
    validators: usize,
    base: u16,
    grpc: u16,
    metrics: u16,
    hosts: Vec<String>,
}

impl Level {
    fn home(&self, dir: &Path, i: usize) -> PathBuf {
        dir.join(format!("{}{i}", self.name))
    }

    fn grpc_url(&self, i: usize) -> String {
        format!("http://{}:{}", self.hosts[i], self.grpc + i as u16)
    }

    /// `id@host:port` of every validator but `i`.
    fn peers(&self, ids: &[String], i: usize) -> String {
        (0..self.validators)
            .filter(|j| *j != i)
            .map(|j| {
                format!(
                    "{}@{}:{}",
                    ids[j],
                    self.hosts[j],
                    self.base + 10 * j as u16 + 6
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The layout flags of `gateway init` and `subnet init` for validator `i`.
    fn layout_flags(&self, args: &TreeArgs, dir: &Path, ids: &[String], i: usize) -> Vec<String> {
        let port = |offset: u16| (self.base + 10 * i as u16 + offset).to_string();
        let mut flags = vec![
            "--validator-home".into(),
            self.home(dir, i).display().to_string(),
            "--persistent-peers".into(),
            self.peers(ids, i),
            "--host".into(),
            self.hosts[i].clone(),
            "--listen-address".into(),
            args.listen_address.to_string(),
            "--timeout-commit".into(),
            args.timeout_commit.clone(),
            "--gossip-port".into(),
            "0".into(),
        ];
        for (flag, value) in [
            ("--cometbft-metrics-port", port(5)),
            ("--p2p-port", port(6)),
            ("--rpc-port", port(7)),
            ("--abci-port", port(8)),
            ("--grpc-port", (self.grpc + i as u16).to_string()),
            ("--metrics-port", (self.metrics + i as u16).to_string()),
        ] {
            flags.push(flag.into());
            flags.push(value);
        }
        flags
    }
}

fn hosts(given: &[String], n: usize, flag: &str) -> Result<Vec<String>> {
    match given.len() {
        0 => Ok(vec!["127.0.0.1".into(); n]),
        len if len == n => Ok(given.to_vec()),
        len => bail!("{flag} names {len} hosts; the level has {n} validators"),
    }
}

/// The setup in progress: where it writes, and the ipsat binary it drives.
struct Setup {
    args: TreeArgs,
    dir: PathBuf,
    ipsat: PathBuf,
    alpha: Level,
    beta: Level,
}

pub async fn run(args: TreeArgs, output: Output) -> Result<()> {
    let setup = Setup::new(args)?;
    let dir = &setup.dir;
    if dir.join(".ready").exists() {
        let summary: Value = serde_json::from_slice(&std::fs::read(dir.join("tree.json"))?)?;
        let gateway = summary["gateway"]
            .as_str()
            .context("tree.json names no gateway")?;
        // The Bitcoin node's start clears the anchoring service's `.ready` when its chain is
        // gone (scripts/devnet, or the compose file's bitcoin service), so the marker says
        // something only once Bitcoin answers.
        let bitcoin = setup.bitcoin().await?;
        if !dir.join("anchor/.ready").exists() {
            setup.restore_bitcoin(&bitcoin, gateway).await?;
        }
        print(
            output,
            format!("the tree in {} is set up", dir.display()),
            summary,
        );
        return Ok(());
    }
    ensure!(
        !dir.join(".started").exists(),
        "a setup of {} started before and did not finish: delete the directory (scripts/devnet reset) and start again",
        dir.display()
    );
    std::fs::create_dir_all(&setup.dir)
        .with_context(|| format!("creating {}", setup.dir.display()))?;
    std::fs::write(setup.dir.join(".started"), b"")?;
    let summary = setup.run().await?;
    std::fs::write(
        setup.dir.join("tree.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    std::fs::write(setup.dir.join(".ready"), b"")?;
    print(
        output,
        format!(
            "the tree is set up in {}: gateway {}",
            setup.dir.display(),
            summary["gateway"]
        ),
        summary,
    );
    Ok(())
}

fn progress(message: &str) {
    eprintln!("[tree] {message}");
}

impl Setup {
    fn new(args: TreeArgs) -> Result<Self> {
        Ok(Setup {
            alpha: Level {
                name: LEVEL_ONE,
                validators: 4,
                base: 26600,
                grpc: 9090,
                metrics: 9464,
                hosts: hosts(&args.alpha_hosts, 4, "--alpha-hosts")?,
            },
            beta: Level {
                name: LEVEL_TWO,
                validators: 3,
                base: 26700,
                grpc: 9190,
                metrics: 9564,
                hosts: hosts(&args.beta_hosts, 3, "--beta-hosts")?,
            },
            ipsat: std::env::current_exe().context("locating the ipsat binary")?,
            dir: args.output_dir.clone(),
            args,
        })
    }

    /// btcd keeps no regtest chain across a restart (measured with v0.24.2: back at height 0),
    /// so after `scripts/devnet down` and `up` the Bitcoin side starts over: mined past the
    /// gateway's last anchor (anchors' Bitcoin heights never go back) and the anchoring
    /// service funded from the new chain; its old state names outputs that no longer exist.
    async fn restore_bitcoin(&self, bitcoin: &RpcClient, gateway: &str) -> Result<()> {
        progress("Bitcoin starts over (btcd keeps no regtest chain): mining past the last anchor");
        let address: alloy::primitives::Address =
            gateway.parse().context("tree.json: gateway address")?;
        let last = wait_for("RSK to answer", || async {
            let gateway = Gateway::at(
                &self.args.rsk,
                address,
                PrivateKeySigner::random(),
                GatewayConfig::default(),
            )
            .await?;
            let anchor = gateway
                .view("latestAnchor", &IpsatGateway::latestAnchorCall {}, None)
                .await?;
            Ok(Some(anchor.btcHeight))
        })
        .await?;
        let fund = self.mature_bitcoin(bitcoin, last + 1).await?;
        let data = self.dir.join("anchor/data");
        if data.exists() {
            std::fs::remove_dir_all(&data)
                .with_context(|| format!("removing {}", data.display()))?;
        }
        self.configure_anchor(gateway, &fund)?;
        std::fs::write(self.dir.join("anchor/.ready"), b"")?;
        Ok(())
    }

    async fn run(&self) -> Result<Value> {
        let keys_dir = self.dir.join("keys");
        let admin = keys::store(
            &keys_dir,
            "rsk-admin",
            secp256k1::SecretKey::from_slice(&hex::decode(RSK_ADMIN_KEY)?)?,
        )?;
        let faucet = keys::create(&keys_dir, "faucet")?;
        let anchorer = self.anchor_keys()?;
        std::fs::create_dir_all(self.dir.join("config"))?;
        std::fs::write(
            self.dir.join("config/client.toml"),
            format!("subnet_id = \"/r33/{LEVEL_ONE}\"\n"),
        )?;

        progress(&format!("waiting for RSK at {}", self.args.rsk));
        let gateway = self.deploy_gateway(&admin, anchorer).await?;
        let address = gateway.address().to_string();
        progress(&format!("gateway deployed at {address}"));
        let mut seats = vec![faucet.address, anchorer];
        for i in 0..self.alpha.validators {
            seats.push(keys::create(&keys_dir, &format!("validator-{i}"))?.address);
        }
        for who in seats {
            // anvil's devnet faucet: what a validator would buy on a real chain.
            gateway
                .rpc()
                .call::<Value>(
                    "anvil_setBalance",
                    json!([who.to_string(), format!("{:#x}", 1_000 * RBTC)]),
                )
                .await
                .context("anvil_setBalance (is --rsk an anvil?)")?;
        }
        self.ipsat(&self.rsk_flags(
            &[
                "gateway",
                "register",
                LEVEL_ONE,
                "--min-validators",
                &self.alpha.validators.to_string(),
                "--min-collateral",
                "1000000000",
                "--checkpoint-period",
                &CHECKPOINT_PERIOD.to_string(),
                "--key",
                "rsk-admin",
            ],
            &address,
        ))?;

        progress("alpha: four validators join on the gateway");
        let mut ids = Vec::new();
        let mut last_join = 0;
        for i in 0..self.alpha.validators {
            let home = self.alpha.home(&self.dir, i).display().to_string();
            let joined = self.ipsat_json(&self.rsk_flags(
                &[
                    "gateway",
                    "join",
                    LEVEL_ONE,
                    "--collateral",
                    &COLLATERAL.to_string(),
                    "--validator-home",
                    &home,
                    "--key",
                    &format!("validator-{i}"),
                    "--cometbft",
                    &self.args.cometbft.display().to_string(),
                ],
                &address,
            ))?;
            ids.push(
                joined["node_id"]
                    .as_str()
                    .context("join printed no node id")?
                    .to_owned(),
            );
            last_join = joined["block"].as_u64().context("join printed no block")?;
        }
        wait_for("the joins to be final on RSK", || async {
            let head = gateway.rpc().block_number().await?;
            Ok((head >= last_join + RSK_CONFIRMATIONS).then_some(()))
        })
        .await?;
        for i in 0..self.alpha.validators {
            let mut command: Vec<String> = [
                "gateway",
                "init",
                LEVEL_ONE,
                "--key",
                &format!("validator-{i}"),
                "--attestation-step",
                "2",
            ]
            .map(str::to_owned)
            .to_vec();
            command.extend(self.alpha.layout_flags(&self.args, &self.dir, &ids, i));
            let command: Vec<&str> = command.iter().map(String::as_str).collect();
            let written = self.ipsat_json(&self.rsk_flags(&command, &address))?;
            ensure!(
                written["validator"] == true,
                "alpha validator {i} is not in the genesis set: {written}"
            );
            self.configure_alpha(i)?;
            std::fs::write(self.alpha.home(&self.dir, i).join(".ready"), b"")?;
        }

        // The client home verifies alpha's proofs (`ipsat query ... --prove`) from its genesis.
        std::fs::copy(
            self.alpha
                .home(&self.dir, 0)
                .join("cometbft/config/genesis.json"),
            self.dir.join("config/genesis.json"),
        )
        .context("copying alpha's genesis into the client home")?;
        progress("alpha: waiting for its first blocks (its nodes start now)");
        let alpha = self.alpha.grpc_url(0);
        wait_for("alpha's first blocks", || async {
            let mut client = Client::connect(&alpha).await?;
            let status = client.query.get_status(pb::GetStatusRequest {}).await?;
            Ok((status.into_inner().height >= 2).then_some(()))
        })
        .await?;

        progress("RBTC deposited from RSK into alpha for the faucet and beta's validators");
        let mut beta_keys = Vec::new();
        for i in 0..self.beta.validators {
            beta_keys.push(keys::create(&keys_dir, &format!("beta-{i}"))?);
        }
        let deposits: Vec<(Address, u128)> = std::iter::once((faucet.address, 100 * RBTC))
            .chain(beta_keys.iter().map(|k| (k.address, RBTC)))
            .collect();
        for (who, amount) in &deposits {
            self.ipsat(&self.rsk_flags(
                &[
                    "gateway",
                    "fund",
                    LEVEL_ONE,
                    &who.to_string(),
                    &amount.to_string(),
                    "--key",
                    "faucet",
                ],
                &address,
            ))?;
        }
        for (who, amount) in &deposits {
            wait_for(
                &format!("{amount} wei minted in alpha for {who}"),
                || async {
                    let mut client = Client::connect(&alpha).await?;
                    let account = client
                        .query
                        .get_account(pb::GetAccountRequest {
                            address: who.0.to_vec(),
                            prove: false,
                        })
                        .await?
                        .into_inner()
                        .account;
                    let balance: u128 = account.map_or(Ok(0), |a| a.balance.parse())?;
                    Ok((balance >= *amount).then_some(()))
                },
            )
            .await?;
        }

        progress("beta: created in alpha, three validators join");
        let on_alpha = ["--node", alpha.as_str(), "--subnet", "/r33/alpha"];
        let (validators, period) = (
            self.beta.validators.to_string(),
            CHECKPOINT_PERIOD.to_string(),
        );
        let mut create = vec![
            "subnet",
            "create",
            LEVEL_TWO,
            "--min-validators",
            &validators,
            "--min-collateral",
            "1000000000",
            "--checkpoint-period",
            &period,
            "--from",
            "faucet",
        ];
        create.extend(on_alpha);
        self.ipsat(&create)?;
        let mut beta_ids = Vec::new();
        for i in 0..self.beta.validators {
            let home = self.beta.home(&self.dir, i);
            let from = format!("beta-{i}");
            let collateral = COLLATERAL.to_string();
            let home_text = home.display().to_string();
            let mut join = vec![
                "subnet",
                "join",
                LEVEL_TWO,
                "--collateral",
                &collateral,
                "--validator-home",
                &home_text,
                "--from",
                &from,
            ];
            join.extend(on_alpha);
            self.ipsat(&join)?;
            beta_ids.push(child_home::ensure_keys(&home, &self.args.cometbft)?.node_id);
        }
        for i in 0..self.beta.validators {
            let mut command: Vec<String> = ["subnet", "init", LEVEL_TWO, "--node", &alpha]
                .map(str::to_owned)
                .to_vec();
            command.extend(self.beta.layout_flags(&self.args, &self.dir, &beta_ids, i));
            for j in 0..self.alpha.validators {
                command.push("--parent-grpc".into());
                command.push(self.alpha.grpc_url(j));
            }
            command.extend(["--output".into(), "json".into()]);
            let command: Vec<&str> = command.iter().map(String::as_str).collect();
            let written = self.ipsat_json(&command)?;
            ensure!(
                written["validator"] == true,
                "beta validator {i} is not in the genesis set: {written}"
            );
            std::fs::write(self.beta.home(&self.dir, i).join(".ready"), b"")?;
        }

        let fund = self
            .mature_bitcoin(&self.bitcoin().await?, SEGWIT_ACTIVE_HEIGHT)
            .await?;
        self.configure_anchor(&address, &fund)?;
        std::fs::write(self.dir.join("anchor/.ready"), b"")?;
        progress("the anchoring service's home is ready");

        Ok(json!({
            "gateway": address,
            "rsk": self.args.rsk,
            "chain_id": 33,
            "bitcoin_rpc": self.args.bitcoin_rpc,
            "alpha": (0..self.alpha.validators).map(|i| self.alpha.grpc_url(i)).collect::<Vec<_>>(),
            "beta": (0..self.beta.validators).map(|i| self.beta.grpc_url(i)).collect::<Vec<_>>(),
            "explorer": format!("http://{}:{}", self.alpha.hosts[0], self.args.explorer_port),
        }))
    }

    /// The anchoring service's home with its RSK key (the gateway's anchorer) and its Bitcoin
    /// key, whose address btcd mines to (`anchor/btcd.conf`); the anchorer's address.
    fn anchor_keys(&self) -> Result<Address> {
        let home = self.dir.join("anchor");
        let anchorer = keys::create(&home.join("keys"), "anchorer")?;
        keys::create(&home.join("keys"), "bitcoin")?;
        let mut config = Config::default();
        config.anchor.bitcoin_key = Some("bitcoin".into());
        config.write(&home)?;
        let address = self.ipsat_json_in(&home, &["anchor", "address"])?;
        let address = address["address"]
            .as_str()
            .context("anchor address printed no address")?;
        // btcd reads its mining address from a config file, so no shell has to splice it in.
        std::fs::write(
            home.join("btcd.conf"),
            format!("[Application Options]\nminingaddr={address}\n"),
        )?;
        Ok(anchorer.address)
    }

    async fn deploy_gateway(&self, admin: &keys::Key, anchorer: Address) -> Result<Gateway> {
        let signer = PrivateKeySigner::from_bytes(&alloy::primitives::B256::from(
            admin.secret.secret_bytes(),
        ))?;
        let config = GatewayConfig {
            confirmations: RSK_CONFIRMATIONS,
            ..GatewayConfig::default()
        };
        let rsk = self.args.rsk.clone();
        wait_for("RSK to answer", || async {
            Ok(
                Gateway::at(&rsk, Default::default(), signer.clone(), config.clone())
                    .await
                    .ok()
                    .map(|_| ()),
            )
        })
        .await?;
        Gateway::deploy(
            &self.args.rsk,
            signer,
            config,
            anchorer.0.into(),
            U256::from(RBTC),
        )
        .await
        .context("deploying the gateway")
    }

    /// alpha `i`'s config: it pulls beta's checkpoints; alpha0 also serves the explorer.
    fn configure_alpha(&self, i: usize) -> Result<()> {
        let home = self.alpha.home(&self.dir, i);
        let mut config = Config::load(&home)?;
        config.checkpoints.children.push(ChildEndpoint {
            name: LEVEL_TWO.into(),
            grpc: Some(self.beta.grpc_url(i % self.beta.validators)),
        });
        if i == 0 {
            config.explorer.listen =
                Some((self.args.listen_address, self.args.explorer_port).into());
            config.explorer.bitcoin_rpc = Some(self.args.bitcoin_rpc.clone());
            config.explorer.bitcoin_user = self.args.bitcoin_user.clone();
            config.explorer.bitcoin_password = self.args.bitcoin_password.clone();
            config.explorer.anchor_stall_after_rsk_blocks = DEVNET_ANCHOR_STALL_RSK_BLOCKS;
        }
        config.write(&home)
    }

    /// The Bitcoin node's RPC, once it answers.
    async fn bitcoin(&self) -> Result<RpcClient> {
        let rpc = RpcClient::new(
            &self.args.bitcoin_rpc,
            &self.args.bitcoin_user,
            &self.args.bitcoin_password,
        )?;
        progress(&format!("waiting for Bitcoin at {}", self.args.bitcoin_rpc));
        wait_for("Bitcoin to answer", || async {
            Ok(Some(rpc.get_block_count().await?))
        })
        .await?;
        Ok(rpc)
    }

    /// Mines up to `height`, at least until segwit is active, and returns the first coinbase,
    /// `txid:0`, which pays the anchoring service's key.
    async fn mature_bitcoin(&self, rpc: &RpcClient, height: u64) -> Result<String> {
        let wanted = height.max(SEGWIT_ACTIVE_HEIGHT);
        let mining = self.mining_address()?;
        let height = rpc.get_block_count().await?;
        if height < wanted {
            progress(&format!("mining {} Bitcoin blocks", wanted - height));
            rpc.generate(wanted - height, &mining).await?;
        }
        let first = rpc.get_block(&rpc.get_block_hash(1).await?).await?;
        let coinbase = first.txdata.first().context("block 1 has no coinbase")?;
        Ok(format!("{}:0", coinbase.compute_txid()))
    }

    /// The address btcd mines to: the anchoring service's.
    fn mining_address(&self) -> Result<ipsat_anchor::bitcoin::Address> {
        let config = std::fs::read_to_string(self.dir.join("anchor/btcd.conf"))?;
        let address = config
            .lines()
            .find_map(|line| line.strip_prefix("miningaddr="))
            .context("anchor/btcd.conf names no miningaddr")?;
        Ok(address
            .parse::<ipsat_anchor::bitcoin::Address<_>>()?
            .assume_checked())
    }

    fn configure_anchor(&self, gateway: &str, fund: &str) -> Result<()> {
        let home = self.dir.join("anchor");
        let mut config = Config::load(&home)?;
        config.gateway.rpc = Some(self.args.rsk.clone());
        config.gateway.address = Some(gateway.to_owned());
        config.gateway.confirmations = RSK_CONFIRMATIONS;
        config.anchor.bitcoin_rpc = Some(self.args.bitcoin_rpc.clone());
        config.anchor.bitcoin_user = self.args.bitcoin_user.clone();
        config.anchor.bitcoin_password = self.args.bitcoin_password.clone();
        config.anchor.rsk_key = Some("anchorer".into());
        config.anchor.fund = vec![fund.to_owned()];
        config.anchor.period_rsk_blocks = ANCHOR_PERIOD_RSK_BLOCKS;
        config.anchor.confirmations = ANCHOR_CONFIRMATIONS;
        config.anchor.poll_interval_ms = 1_000;
        config.anchor.stall_after_rsk_blocks = Some(DEVNET_ANCHOR_STALL_RSK_BLOCKS);
        config.metrics.listen = Some(([127, 0, 0, 1], ANCHOR_METRICS_PORT).into());
        config.write(&home)
    }

    /// `args` followed by the gateway flags of this tree.
    fn rsk_flags<'a>(&'a self, args: &[&'a str], gateway: &'a str) -> Vec<&'a str> {
        let mut all = args.to_vec();
        all.extend([
            "--rsk",
            self.args.rsk.as_str(),
            "--gateway",
            gateway,
            "--confirmations",
            "2",
        ]);
        all
    }

    /// Runs `ipsat ARGS` in the tree's client home and returns what it printed.
    fn ipsat(&self, args: &[&str]) -> Result<String> {
        self.ipsat_in(&self.dir, args)
    }

    fn ipsat_in(&self, home: &Path, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.ipsat)
            .args(args)
            .arg("--home")
            .arg(home)
            .output()
            .with_context(|| format!("running {}", self.ipsat.display()))?;
        ensure!(
            out.status.success(),
            "ipsat {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn ipsat_json(&self, args: &[&str]) -> Result<Value> {
        self.ipsat_json_in(&self.dir, args)
    }

    fn ipsat_json_in(&self, home: &Path, args: &[&str]) -> Result<Value> {
        let mut all = args.to_vec();
        if !all.contains(&"--output") {
            all.extend(["--output", "json"]);
        }
        let printed = self.ipsat_in(home, &all)?;
        serde_json::from_str(&printed)
            .with_context(|| format!("ipsat {} printed no JSON: {printed}", args.join(" ")))
    }
}

/// Polls `check` every half second until it yields, reporting every 15 s; gives up after
/// [`PATIENCE`] without success. Errors of `check` count as "not yet": the thing waited for
/// may still be starting.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let started = Instant::now();
    let mut reported = started;
    loop {
        let last = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => String::from("not yet"),
            Err(e) => format!("{e:#}"),
        };
        if started.elapsed() > PATIENCE {
            bail!("gave up waiting for {what} after {PATIENCE:?}: {last}");
        }
        if reported.elapsed() > Duration::from_secs(15) {
            progress(&format!(
                "still waiting for {what} ({}s: {last})",
                started.elapsed().as_secs()
            ));
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `ipsat testnet status`: subnets, heights, checkpoints and the anchor, as the explorer sees
/// them.
pub async fn status(args: StatusArgs, output: Output) -> Result<()> {
    let url = format!("{}/api/tree", args.explorer.trim_end_matches('/'));
    let view: TreeView = reqwest::get(&url)
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("reading {url}"))?
        .json()
        .await
        .with_context(|| format!("{url} did not return the tree"))?;
    let mut human = format!(
        "{:<24} {:>8} {:>10} {:>6} {:>11} {:>9}\n",
        "SUBNET", "HEIGHT", "VALIDATORS", "POWER", "CHECKPOINT", "ACCEPTED"
    );
    for s in &view.subnets {
        let height = s.height.map_or("-".into(), |h| h.to_string());
        let checkpoint = s
            .checkpoint
            .as_ref()
            .map_or("-".into(), |c| c.height.to_string());
        let accepted = s.accepted_height.map_or("-".into(), |h| h.to_string());
        human.push_str(&format!(
            "{:<24} {height:>8} {:>10} {:>6} {checkpoint:>11} {accepted:>9}\n",
            s.id,
            s.validators.len(),
            s.validators.iter().map(|v| v.power).sum::<u64>(),
        ));
    }
    match &view.gateway {
        Some(g) => {
            human.push_str(&format!(
                "gateway {} at RSK height {}, blocktree root {}\n",
                g.address, g.rsk_height, g.blocktree_root
            ));
            match &g.anchor {
                Some(a) => human.push_str(&format!(
                    "anchor  Bitcoin tx {} at height {} ({}), RSK height {}\n",
                    a.btc_txid,
                    a.btc_height,
                    match (a.in_best_chain, a.confirmations) {
                        (Some(true), Some(c)) => format!("{c} confirmations"),
                        (Some(false), _) => "not in the Bitcoin node's best chain".into(),
                        _ => "confirmations unknown".into(),
                    },
                    a.rsk_height
                )),
                None => human.push_str("anchor  none recorded yet\n"),
            }
            if let Some(lag) = &g.anchor_lag {
                human.push_str(&format!("lag     {}\n", lag.describe()));
            }
        }
        None => human.push_str("no gateway\n"),
    }
    for error in &view.errors {
        human.push_str(&format!("error: {error}\n"));
    }
    print(
        output,
        human.trim_end().to_owned(),
        serde_json::to_value(&view)?,
    );
    Ok(())
}
