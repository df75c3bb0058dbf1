//! Compiles every `bpf/*.bpf.c` into a libbpf skeleton (`$OUT_DIR/<name>.skel.rs`) and writes
//! `$OUT_DIR/skeletons.rs`, one `pub mod <name>` per skeleton, so a new collector's `.bpf.c`
//! needs no edit here or in `lib.rs`.
//!
//! The clang binary defaults to Debian's `clang-19`; set `KANARY_CLANG` to use another.

use std::path::{Path, PathBuf};
use std::{env, fs};

use libbpf_cargo::SkeletonBuilder;

fn main() {
    let bpf_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bpf");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("KANARY_CLANG").unwrap_or_else(|_| "clang-19".to_string());
    println!("cargo:rerun-if-env-changed=KANARY_CLANG");
    println!(
        "cargo:rerun-if-changed={}",
        bpf_dir.join("include").display()
    );

    let mut sources: Vec<PathBuf> = fs::read_dir(&bpf_dir)
        .expect("bpf/ is readable")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    sources.sort();
    let mut modules = String::new();
    for source in sources {
        println!("cargo:rerun-if-changed={}", source.display());
        let file_name = source
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let name = file_name.trim_end_matches(".bpf.c");
        let skeleton = out_dir.join(format!("{name}.skel.rs"));
        if let Err(error) = SkeletonBuilder::new()
            .source(&source)
            .clang(&clang)
            .clang_args([
                "-I".as_ref(),
                bpf_dir.join("include").as_os_str(),
                "-Wall".as_ref(),
                "-O2".as_ref(),
            ])
            .build_and_generate(&skeleton)
        {
            panic!(
                "building {} with {clang} failed: {error:#}\n\
                 (install clang-19, libelf-dev, zlib1g-dev and pkg-config with scripts/install-deps.sh, \
                 or point KANARY_CLANG at another clang)",
                source.display()
            );
        }
        modules.push_str(&format!(
            "pub mod {name} {{ include!(concat!(env!(\"OUT_DIR\"), \"/{name}.skel.rs\")); }}\n"
        ));
    }
    fs::write(out_dir.join("skeletons.rs"), modules).expect("OUT_DIR is writable");
    println!("cargo:rerun-if-changed={}", bpf_dir.display());
}
