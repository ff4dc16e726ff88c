//! Typed bindings generated from the committed artifact, so the Rust side can never drift
//! from the deployed ABI, plus the artifact's bytecode for deployment.

use alloy::primitives::Bytes;

pub use bindings::IpsatGateway;

// The generated call constructors mirror the ABI, which has functions of more than 7 arguments.
#[allow(clippy::too_many_arguments)]
// `sol!` generates these items from the ABI, so they cannot carry doc comments.
#[allow(missing_docs)]
mod bindings {
    alloy::sol!(
        #[sol(all_derives)]
        IpsatGateway,
        "contracts/artifacts/IpsatGateway.json"
    );
}

/// The committed artifact (ABI, bytecode, compiler settings).
pub const ARTIFACT_JSON: &str = include_str!("../contracts/artifacts/IpsatGateway.json");

/// Creation bytecode of `IpsatGateway` from the committed artifact.
pub fn creation_bytecode() -> Bytes {
    let artifact: serde_json::Value =
        serde_json::from_str(ARTIFACT_JSON).expect("the committed artifact is valid JSON");
    let hex = artifact["bytecode"]
        .as_str()
        .expect("the committed artifact has a bytecode string");
    hex.parse().expect("the committed bytecode is hex")
}
