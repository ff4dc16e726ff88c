//! Protobuf wire types and gRPC services of IPsatoshi, package `ipsat.v1`.
//!
//! The `.proto` files beside this crate are the public contract for dApps: fields are only
//! ever added, never renumbered. This crate owns generated code only; it must not depend on
//! any other ipsat crate.

/// Version 1 of the IPsatoshi API.
pub mod v1 {
    // Generated code: its documentation is the comments in the .proto files.
    #![allow(missing_docs)]
    tonic::include_proto!("ipsat.v1");

    /// Encoded `FileDescriptorSet` of `ipsat.v1`, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ipsat_descriptor");
}
