//! The eBPF objects are compiled by `build-objects.sh` and committed under
//! obj/ (see README.md): a build needs no clang. This only makes cargo
//! rebuild the crate when an object changes.
fn main() {
    for obj in ["tcp", "uring", "mem", "steer"] {
        println!("cargo::rerun-if-changed=obj/{obj}.bpf.o");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
