//! Build script: generates the `ipsat.v1` protobuf messages and tonic gRPC code from
//! `ipsat/v1/types.proto` and `ipsat/v1/api.proto`, and writes their file descriptor set to
//! `ipsat_descriptor.bin` in `OUT_DIR`, using a vendored `protoc` so none need be installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("ipsat_descriptor.bin"))
        .compile_protos(&["ipsat/v1/types.proto", "ipsat/v1/api.proto"], &["."])?;
    println!("cargo:rerun-if-changed=ipsat");
    Ok(())
}
