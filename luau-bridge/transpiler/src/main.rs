//! CLI: `wasm-to-luau INPUT.wasm [-o OUTPUT.luau] [--native] [--split-chars N --part-require EXPR]`.
use std::process::ExitCode;

const USAGE: &str = "usage: wasm-to-luau INPUT.wasm [-o OUTPUT.luau] [--native] [--split-chars N [--part-require EXPR]]
  --split-chars N      no output file longer than N characters: the main chunk goes to
                       OUTPUT.luau, the function bodies to OUTPUT_2.luau, OUTPUT_3.luau, ...
                       (needs -o)
  --part-require EXPR  Luau expression the main chunk loads part {n} with
                       (default: require(script.Parent.STEM_{n}), STEM = OUTPUT's file stem)";

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(1)
}

/// Writes to a temporary sibling and renames, so a failure leaves no partial file.
fn write_file(path: &str, text: &str) -> std::io::Result<()> {
    let tmp = format!("{path}.tmp{}", std::process::id());
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

fn main() -> ExitCode {
    let mut input = None;
    let mut output: Option<String> = None;
    let mut split_chars: Option<usize> = None;
    let mut part_require: Option<String> = None;
    let mut opts = wasm_to_luau::Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--native" => opts.native = true,
            "-o" => match args.next() {
                Some(o) => output = Some(o),
                None => return usage(),
            },
            "--split-chars" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => split_chars = Some(n),
                None => return usage(),
            },
            "--part-require" => match args.next() {
                Some(e) => part_require = Some(e),
                None => return usage(),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
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
    if let Some(max_chars) = split_chars {
        let Some(path) = output else {
            eprintln!("error: --split-chars needs -o OUTPUT.luau");
            return ExitCode::from(1);
        };
        let (base, ext) = match path.rsplit_once('.') {
            Some((b, e)) if !e.contains('/') => (b.to_string(), format!(".{e}")),
            _ => (path.clone(), String::new()),
        };
        let stem = base.rsplit('/').next().unwrap_or(&base).to_string();
        let split = wasm_to_luau::Split {
            max_chars,
            require: part_require.unwrap_or(format!("require(script.Parent.{stem}_{{n}})")),
        };
        let chunks = match wasm_to_luau::transpile_split(&wasm, &opts, &split) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {input}: {e}");
                return ExitCode::from(1);
            }
        };
        for (i, text) in chunks.iter().enumerate() {
            let file = if i == 0 {
                path.clone()
            } else {
                format!("{base}_{}{ext}", i + 1)
            };
            if let Err(e) = write_file(&file, text) {
                eprintln!("error: cannot write {file}: {e}");
                return ExitCode::from(1);
            }
        }
        return ExitCode::SUCCESS;
    }
    let out = match wasm_to_luau::transpile(&wasm, &opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {input}: {e}");
            return ExitCode::from(1);
        }
    };
    let res = match &output {
        Some(path) => write_file(path, &out),
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
