//! Generates the gRPC code from `proto/` with protox, so no system protoc is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let fds = protox::compile(
        [
            format!("{proto_dir}/control.proto"),
            format!("{proto_dir}/cluster.proto"),
            format!("{proto_dir}/dispatcher.proto"),
            format!("{proto_dir}/containers.proto"),
        ],
        [proto_dir],
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;
    println!("cargo:rerun-if-changed={proto_dir}");
    Ok(())
}
