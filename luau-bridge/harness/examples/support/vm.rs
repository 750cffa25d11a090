//! The VM the counting examples run in: `pkg/roblox` (or `NSQ_DIR`) mounted as
//! `ReplicatedStorage.Packages.NpcSync`, interpreted or with native code.
use npc_sync_luau_harness::{roblox::package_mount_or_env, Options, Roblox};

/// A sandboxed VM with the package mounted; `native` turns on native code generation.
pub fn package_vm(native: bool) -> Roblox {
    Roblox::new(Options {
        native,
        mounts: vec![package_mount_or_env()],
        ..Options::default()
    })
    .expect("vm")
}
