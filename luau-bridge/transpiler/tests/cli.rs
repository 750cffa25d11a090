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
