//! One Luau VM with the stand-in Roblox environment (`prelude.luau`), files mounted as
//! ModuleScripts, sandboxed last so every script runs as Roblox runs it.

use crate::http::{HttpHub, HttpOutcome, HttpRequest};
use crate::{json, tree};
use mlua::{chunk::Compiler, Function, Lua, MultiValue, Table, UserData, UserDataMethods, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How to build the VM.
#[derive(Clone, Debug)]
pub struct Options {
    /// Native code generation (Roblox's `--!native` where available) instead of the
    /// interpreter.
    pub native: bool,
    /// Folders or files mounted as ModuleScripts: `("ReplicatedStorage.Packages.NpcSync",
    /// "pkg/roblox")`. The first name is a service; missing folders on the way are created.
    pub mounts: Vec<(String, PathBuf)>,
    /// What `HttpService:GetSecret(key)` knows.
    pub secrets: Vec<(String, String)>,
    /// How long `RequestAsync` waits for an answer before raising `HttpError: Timedout`.
    pub http_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            native: false,
            mounts: Vec::new(),
            secrets: Vec::new(),
            http_timeout: Duration::from_millis(2000),
        }
    }
}

/// The repository's root (for mounting `pkg/roblox` and `luau-bridge/examples`).
pub use npc_sync_testkit::repo_root;

/// Where a game installs the package (Wally's `Packages` folder in `ReplicatedStorage`) and
/// the bridge's scripts require it from.
pub const PACKAGE_PATH: &str = "ReplicatedStorage.Packages.NpcSync";

/// This repository's `pkg/roblox` mounted where a game installs it (an [`Options::mounts`]
/// entry).
pub fn package_mount() -> (String, PathBuf) {
    (PACKAGE_PATH.into(), repo_root().join("pkg/roblox"))
}

/// [`package_mount`], or the folder the environment variable `NSQ_DIR` names mounted there
/// instead (the instruction-count examples compare two builds with it).
pub fn package_mount_or_env() -> (String, PathBuf) {
    match std::env::var_os("NSQ_DIR") {
        Some(dir) => (PACKAGE_PATH.into(), PathBuf::from(dir)),
        None => package_mount(),
    }
}

/// `HttpService:GetSecret`'s value: usable as a header value, never readable as text.
#[derive(Clone)]
struct Secret(String);

impl UserData for Secret {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("AddPrefix", |_, s, p: String| {
            Ok(Secret(format!("{p}{}", s.0)))
        });
        m.add_method("AddSuffix", |_, s, p: String| {
            Ok(Secret(format!("{}{p}", s.0)))
        });
        m.add_meta_method(mlua::MetaMethod::ToString, |_, _, ()| Ok("Secret"));
    }
    fn add_fields<F: mlua::UserDataFields<Self>>(f: &mut F) {
        f.add_meta_field(mlua::MetaMethod::Type, "Secret");
    }
}

/// A VM standing in for one Roblox game server.
pub struct Roblox {
    /// The Luau state.
    pub lua: Lua,
    hub: Arc<HttpHub>,
    harness: Table,
    script_parent: Table,
    instance_mt: Table,
    base: Table,
}

impl Roblox {
    /// Builds the VM: prelude, mounts, `require`, then the sandbox.
    pub fn new(opts: Options) -> mlua::Result<Roblox> {
        let lua = Lua::new();
        lua.set_compiler(Compiler::new().set_optimization_level(2));
        lua.enable_jit(opts.native);
        let hub = Arc::new(HttpHub::default());
        let native = natives(&lua, &hub, &opts)?;
        let env: Table = lua
            .load(include_str!("prelude.luau"))
            .set_name("=prelude")
            .call(native)?;
        let g = lua.globals();
        for k in ["game", "task", "os", "warn"] {
            g.set(k, env.get::<Value>(k)?)?;
        }
        let harness: Table = env.get("harness")?;
        g.set("harness", harness.clone())?;
        g.set("workspace", Value::Nil)?;
        let services: Table = env.get("services")?;
        let new_instance: Function = env.get("newInstance")?;
        let instance_mt: Table = env.get("instanceMt")?;
        let modules = Rc::new(RefCell::new(tree::Modules::default()));
        for (at, path) in &opts.mounts {
            let mut names: Vec<&str> = at.split('.').collect();
            let leaf = names.pop().expect("mount path names a service and a leaf");
            let mut parent: Table = services.get(names[0]).map_err(|_| {
                mlua::Error::runtime(format!("mount {at}: unknown service {}", names[0]))
            })?;
            for n in &names[1..] {
                let children: Table = parent.raw_get("__children")?;
                parent = match children.raw_get::<Option<Table>>(*n)? {
                    Some(t) => t,
                    None => new_instance.call(("Folder", *n, parent.clone()))?,
                };
            }
            let inst = tree::mount(&lua, &modules, &instance_mt, &parent, leaf, path)?;
            let children: Table = parent.raw_get("__children")?;
            children.raw_set(leaf, inst)?;
        }
        let script_parent: Table = services.get("ServerScriptService")?;
        let base = lua.create_table()?;
        g.set("require", tree::require_fn(&lua, modules, base.clone())?)?;
        for pair in g.pairs::<Value, Value>() {
            let (k, v) = pair?;
            base.raw_set(k, v)?;
        }
        lua.sandbox(true)?;
        Ok(Roblox {
            lua,
            hub,
            harness,
            script_parent,
            instance_mt,
            base,
        })
    }

    /// Runs `src` as a Script (its own `script`, in ServerScriptService) in a main thread,
    /// advancing the test clock one 60 Hz frame at a time until it returns (at most
    /// `max_frames`). Errors in it or in any thread it started fail the run.
    pub fn run(
        &self,
        name: &str,
        src: &str,
        args: MultiValue,
        max_frames: u32,
    ) -> mlua::Result<MultiValue> {
        let script = self.lua.create_table()?;
        script.raw_set("Name", name)?;
        script.raw_set("ClassName", "Script")?;
        script.raw_set("Parent", self.script_parent.clone())?;
        script.raw_set("__children", self.lua.create_table()?)?;
        script.set_metatable(Some(self.instance_mt.clone()))?;
        let env = tree::script_env(&self.lua, &self.base, script)?;
        let f = self
            .lua
            .load(src)
            .set_name(format!("={name}"))
            .set_environment(env)
            .into_function()?;
        let run: Function = self.harness.get("run")?;
        let mut all = MultiValue::new();
        all.push_back(Value::Function(f));
        all.push_back(Value::Integer(max_frames as i64));
        all.extend(args);
        run.call(all)
    }

    /// HTTP requests made so far through `RequestAsync`.
    pub fn http_requests_started(&self) -> u64 {
        self.hub.started()
    }
}

fn natives(lua: &Lua, hub: &Arc<HttpHub>, opts: &Options) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let h = Arc::clone(hub);
    let timeout = opts.http_timeout;
    t.set(
        "httpStart",
        lua.create_function(
            move |_, (url, method, headers, body): (String, String, Table, String)| {
                let mut hs = BTreeMap::new();
                for pair in headers.pairs::<String, Value>() {
                    let (k, v) = pair?;
                    let v = match v {
                        Value::String(s) => s.to_str()?.to_string(),
                        Value::UserData(u) => u.borrow::<Secret>()?.0.clone(),
                        other => {
                            return Err(mlua::Error::runtime(format!(
                                "header {k}: a string or Secret expected, got {}",
                                other.type_name()
                            )))
                        }
                    };
                    hs.insert(k, v);
                }
                Ok(h.start(
                    HttpRequest {
                        url,
                        method,
                        headers: hs,
                        body,
                    },
                    timeout,
                ))
            },
        )?,
    )?;
    let h = Arc::clone(hub);
    t.set(
        "httpTake",
        lua.create_function(move |lua, settle: bool| {
            let out = lua.create_table()?;
            for (i, (id, o)) in h.take(settle).into_iter().enumerate() {
                let r = lua.create_table()?;
                r.set("id", id)?;
                match o {
                    HttpOutcome::Response {
                        status,
                        reason,
                        headers,
                        body,
                    } => {
                        r.set("status", status)?;
                        r.set("reason", reason)?;
                        let ht = lua.create_table()?;
                        for (k, v) in headers {
                            ht.set(k, v)?;
                        }
                        r.set("headers", ht)?;
                        r.set("body", body)?;
                    }
                    HttpOutcome::Error(e) => r.set("err", e)?,
                }
                out.raw_set(i + 1, r)?;
            }
            Ok(out)
        })?,
    )?;
    t.set(
        "jsonEncode",
        lua.create_function(|_, v: Value| json::encode(&v).map_err(mlua::Error::runtime))?,
    )?;
    t.set(
        "jsonDecode",
        lua.create_function(|lua, s: String| json::decode(lua, &s))?,
    )?;
    t.set(
        "warn",
        lua.create_function(|_, s: String| {
            eprintln!("warn: {s}");
            Ok(())
        })?,
    )?;
    let secrets: BTreeMap<String, String> = opts.secrets.iter().cloned().collect();
    t.set(
        "getSecret",
        lua.create_function(move |_, key: String| match secrets.get(&key) {
            Some(v) => Ok(Secret(v.clone())),
            None => Err(mlua::Error::runtime("Can't find secret with given key")),
        })?,
    )?;
    Ok(t)
}
