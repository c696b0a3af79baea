// The shared build script: see common/build/build_info.rs.
include!("../common/build/build_info.rs");
