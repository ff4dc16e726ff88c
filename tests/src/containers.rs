//! The container tree of `devnet/docker-compose.yml`, run by podman-compose under a project
//! name, data directory and host address of its own, so it never touches an operator's devnet.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::{log_tail, Client};

/// A container devnet run by podman-compose under a project name and data directory of its
/// own; dropping it takes the containers down and removes its network.
pub struct ComposeDevnet {
    repo: PathBuf,
    project: String,
    image: String,
    /// Host address the nodes' ports are published on.
    bind: String,
    data: tempfile::TempDir,
}

impl ComposeDevnet {
    /// Builds `image` from `ipsat_bin` with `devnet/images.sh`, for a devnet whose ports are
    /// published on `bind` (a loopback address of its own keeps it apart from other devnets).
    pub fn build(repo: &Path, ipsat_bin: &Path, image: &str, bind: &str) -> Result<Self> {
        let output = Command::new("bash")
            .arg(repo.join("devnet/images.sh"))
            .env("IPSAT_BIN", ipsat_bin)
            .env("IPSAT_IMAGE", image)
            .output()
            .context("running devnet/images.sh")?;
        ensure!(
            output.status.success(),
            "devnet/images.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(Self {
            repo: repo.to_owned(),
            project: format!("ipsat-test-{}", std::process::id()),
            image: image.to_owned(),
            bind: bind.to_owned(),
            data: tempfile::tempdir()?,
        })
    }

    /// `program` with the project's podman settings, unless the caller chose others.
    fn container_tool(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        if std::env::var_os("CONTAINERS_CONF").is_none() {
            command.env("CONTAINERS_CONF", self.repo.join("devnet/containers.conf"));
        }
        command
    }

    fn podman(&self) -> Command {
        self.container_tool("podman")
    }

    fn compose(&self, args: &[&str]) -> Result<()> {
        let output = self
            .container_tool("podman-compose")
            .arg("-f")
            .arg(self.repo.join("devnet/docker-compose.yml"))
            .args(["-p", &self.project])
            .args(args)
            .env("IPSAT_DEVNET_DATA", self.data.path())
            .env("IPSAT_DEVNET_BIND", &self.bind)
            .env("IPSAT_IMAGE", &self.image)
            .output()
            .context("running podman-compose")?;
        ensure!(
            output.status.success(),
            "podman-compose {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// `podman-compose up -d`: the setup creates the tree on first use; every service starts
    /// once its home is ready.
    pub fn up(&self) -> Result<()> {
        self.compose(&["up", "-d"])
    }

    /// `podman-compose stop`: SIGTERM to every service.
    pub fn stop(&self) -> Result<()> {
        self.compose(&["stop"])
    }

    /// `podman-compose down`: removes the containers; the state stays in the data directory.
    pub fn down(&self) -> Result<()> {
        self.compose(&["down"])
    }

    fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.project)
    }

    /// The exit code of a stopped service's container.
    pub fn exit_code(&self, service: &str) -> Result<i64> {
        let output = self
            .podman()
            .args(["inspect", "--format", "{{.State.ExitCode}}"])
            .arg(self.container(service))
            .output()?;
        ensure!(output.status.success(), "podman inspect {service} failed");
        Ok(String::from_utf8_lossy(&output.stdout).trim().parse()?)
    }

    /// The last lines a service's container printed, and its cometbft's if it runs one, for
    /// failure messages.
    pub fn logs(&self, service: &str) -> String {
        let container = self
            .podman()
            .args(["logs", "--tail", "40"])
            .arg(self.container(service))
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            })
            .unwrap_or_default();
        format!(
            "--- {service} container ---\n{container}\n--- {service} cometbft ---\n{}",
            log_tail(&self.data.path().join(service).join("logs/cometbft.log"))
        )
    }

    /// A published endpoint: `http://<bind>:<port>`.
    pub fn url(&self, port: u16) -> String {
        format!("http://{}:{port}", self.bind)
    }

    /// A gRPC client for the node publishing gRPC on `port`.
    pub async fn client(&self, port: u16, patience: Duration) -> Result<Client> {
        Client::connect(&self.url(port), patience)
            .await
            .with_context(|| format!("gRPC on {port}"))
    }
}

impl Drop for ComposeDevnet {
    fn drop(&mut self) {
        let _ = self.down();
        let _ = self
            .podman()
            .args(["network", "rm", "-f"])
            .arg(format!("{}_default", self.project))
            .output();
    }
}
