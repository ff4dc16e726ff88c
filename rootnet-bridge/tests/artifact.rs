//! The committed artifact is exactly what the pinned solc produces from the committed source.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::process::Command;

#[test]
fn recompiling_the_contract_reproduces_the_committed_artifact() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/build.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg("--check")
        .output()
        .expect("running contracts/build.sh");
    assert!(
        output.status.success(),
        "artifact differs from a fresh compile:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
