//! Generate the gRPC code from cm.proto with a vendored protoc, so a fresh
//! machine needs no protoc of its own (PROTOC, when set, wins).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = match std::env::var_os("PROTOC") {
        Some(p) => p.into(),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    println!("cargo:rerun-if-changed=cm.proto");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    // Small buffers for long-lived streams: src/codec.rs.
    tonic_prost_build::configure()
        .codec_path("crate::codec::Codec")
        .compile_with_config(config, &["cm.proto"], &["."])?;
    Ok(())
}
