//! Prints the sample's results natively, in the format the transpiler's test compares.
fn main() {
    for line in rust_sample_lines() {
        println!("{line}");
    }
}

fn rust_sample_lines() -> Vec<String> {
    use rust_sample::*;
    let mut out = vec![];
    for n in [0u32, 1, 10, 200] {
        out.push(format!("words {n} {}", words(n)));
        out.push(format!("shapes {n} {:016x}", shapes(n).to_bits()));
        out.push(format!("f32 {n} {:08x}", f32_mix(n).to_bits()));
        out.push(format!("sorting {n} {}", sorting(n, n + 7)));
        out.push(format!("formatting {n} {}", formatting(n)));
        out.push(format!("i64 {n} {}", i64_mix(n)));
        out.push(format!("greeting {n} {}", greeting(n)));
    }
    out
}
