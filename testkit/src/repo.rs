//! Where the repository is, for the files tests and tools load (`pkg/roblox`, traces).

use std::path::{Path, PathBuf};

/// The repository's root: the nearest folder at or above the working directory holding
/// `build.sh` and `pkg/roblox` (cargo runs tests and benches in the package's folder; the
/// tools run from the root), else the one this crate was compiled in. Not the compile-time
/// path alone: a target directory shared between clones keeps a binary built in another
/// clone, which would load that clone's `pkg/roblox`.
pub fn repo_root() -> PathBuf {
    let is_root = |d: &Path| d.join("build.sh").is_file() && d.join("pkg/roblox").is_dir();
    if let Ok(cwd) = std::env::current_dir() {
        if let Some(d) = cwd.ancestors().find(|d| is_root(d)) {
            return d.to_path_buf();
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_holds_the_build_script_and_the_roblox_package() {
        let root = repo_root();
        let cwd = std::env::current_dir().unwrap();
        assert!(
            cwd.starts_with(&root),
            "{} is not above {}",
            root.display(),
            cwd.display()
        );
        assert!(root.join("build.sh").is_file(), "{}", root.display());
        assert!(root.join("pkg/roblox").is_dir(), "{}", root.display());
    }
}
