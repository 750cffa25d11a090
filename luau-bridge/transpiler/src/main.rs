//! CLI: `wasm-to-luau INPUT.wasm [-o OUTPUT.luau] [--native]`.
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: wasm-to-luau INPUT.wasm [-o OUTPUT.luau] [--native]");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let mut input = None;
    let mut output = None;
    let mut opts = wasm_to_luau::Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--native" => opts.native = true,
            "-o" => match args.next() {
                Some(o) => output = Some(o),
                None => return usage(),
            },
            "-h" | "--help" => {
                usage();
                return ExitCode::SUCCESS;
            }
            _ if input.is_none() && !a.starts_with('-') => input = Some(a),
            _ => return usage(),
        }
    }
    let Some(input) = input else { return usage() };
    let wasm = match std::fs::read(&input) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {input}: {e}");
            return ExitCode::from(1);
        }
    };
    let out = match wasm_to_luau::transpile(&wasm, &opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {input}: {e}");
            return ExitCode::from(1);
        }
    };
    let res = match &output {
        // Write to a temporary sibling and rename, so a failure leaves no partial file.
        Some(path) => {
            let tmp = format!("{path}.tmp{}", std::process::id());
            std::fs::write(&tmp, &out)
                .and_then(|_| std::fs::rename(&tmp, path))
                .inspect_err(|_| {
                    let _ = std::fs::remove_file(&tmp);
                })
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(out.as_bytes())
        }
    };
    if let Err(e) = res {
        eprintln!("error: cannot write output: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
