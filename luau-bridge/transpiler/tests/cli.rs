//! The command-line tool: errors name what and where, exit 1, and leave no output file;
//! output is deterministic and carries the right header.
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wasm-to-luau"))
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wasm-to-luau-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// (module (func (export "f") (param i32) (result i32) local.get 0 i32.const 1 i32.add))
const ADD1: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f,
    0x03, 0x02, 0x01, 0x00, 0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, 0x0a, 0x09, 0x01, 0x07, 0x00,
    0x20, 0x00, 0x41, 0x01, 0x6a, 0x0b,
];

#[test]
fn valid_module_header_and_determinism() {
    let input = tmp("add1.wasm");
    std::fs::write(&input, ADD1).unwrap();
    let out1 = tmp("a.luau");
    let out2 = tmp("b.luau");
    assert!(bin()
        .arg(&input)
        .arg("-o")
        .arg(&out1)
        .status()
        .unwrap()
        .success());
    assert!(bin()
        .arg(&input)
        .arg("-o")
        .arg(&out2)
        .status()
        .unwrap()
        .success());
    let a = std::fs::read_to_string(&out1).unwrap();
    assert_eq!(
        a,
        std::fs::read_to_string(&out2).unwrap(),
        "output must be deterministic"
    );
    assert!(a.starts_with("--!optimize 2\n"));
    assert!(!a.contains("--!native"));
    let native = bin().arg(&input).arg("--native").output().unwrap();
    assert!(native.status.success());
    assert!(String::from_utf8(native.stdout)
        .unwrap()
        .contains("--!native\n"));
}

#[test]
fn invalid_module_is_rejected_without_output() {
    // Same module with i32.add replaced by i64.add: a type error inside function 0.
    let mut bad = ADD1.to_vec();
    let pos = bad.iter().rposition(|&b| b == 0x6a).unwrap();
    bad[pos] = 0x7c;
    let input = tmp("bad.wasm");
    std::fs::write(&input, &bad).unwrap();
    let out = tmp("bad.luau");
    let _ = std::fs::remove_file(&out);
    let r = bin().arg(&input).arg("-o").arg(&out).output().unwrap();
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8(r.stderr).unwrap();
    assert!(
        err.contains("type mismatch") && err.contains("offset") && err.contains("function 0"),
        "error names what and where: {err}"
    );
    assert!(!out.exists(), "no partial output");
    // Truncated binary.
    std::fs::write(&input, &ADD1[..20]).unwrap();
    let r = bin().arg(&input).arg("-o").arg(&out).output().unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(!out.exists());
}

/// The bench-kernels module: big enough to need several parts at a small limit.
fn sample_wasm() -> Vec<u8> {
    let kernels = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/bench-kernels");
    let target = tmp("split-target");
    let ok = Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .arg("--manifest-path")
        .arg(format!("{kernels}/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .unwrap()
        .success();
    assert!(ok, "building samples/bench-kernels");
    let dir = target.join("wasm32-unknown-unknown/release");
    let wasm = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wasm"))
        .expect("a .wasm");
    std::fs::read(wasm).unwrap()
}

#[test]
fn split_output_stays_under_the_limit_and_is_deterministic() {
    let input = tmp("kernels.wasm");
    std::fs::write(&input, sample_wasm()).unwrap();
    let run = |dir: &str| {
        let d = tmp(dir);
        std::fs::create_dir_all(&d).unwrap();
        let out = d.join("Core.luau");
        let o = bin()
            .arg(&input)
            .args(["--split-chars", "8000", "-o"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut files: Vec<(String, String)> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let a = run("split-a");
    assert!(
        a.len() >= 3,
        "several parts: {:?}",
        a.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(a.iter().all(|(_, text)| text.len() <= 8000));
    assert_eq!(a[0].0, "Core.luau");
    assert_eq!(a[1].0, "Core_2.luau");
    assert!(a[0].1.contains("local P2 = require(script.Parent.Core_2)"));
    assert_eq!(a, run("split-b"), "split output must be deterministic");
    // A limit no function fits, and a split without -o: errors, no output.
    let o = bin()
        .arg(&input)
        .args(["--split-chars", "100", "-o"])
        .arg(tmp("split-c.luau"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("more than the split limit of 100"));
    assert!(!tmp("split-c.luau").exists());
    let o = bin()
        .arg(&input)
        .args(["--split-chars", "8000"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs -o"));
}
