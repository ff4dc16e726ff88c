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
