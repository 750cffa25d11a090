//! A PostgreSQL cluster of the tests' own, on a temporary directory and a free port. The
//! binaries are looked up on PATH and in Debian's /usr/lib/postgresql/*/bin; when none is
//! found the test fails saying how to install them (`./build.sh setup` does).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running cluster; stopped and deleted on drop.
pub struct Postgres {
    /// Connection URL of its `postgres` database.
    pub url: String,
    dir: PathBuf,
    data: PathBuf,
    root: bool,
    child: Child,
}

fn find(bin: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join(bin);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|v| v.join("bin").join(bin))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// PostgreSQL refuses to run as root: then run it as the `postgres` user.
fn command(bin: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

impl Postgres {
    /// Starts a fresh cluster.
    pub fn start() -> Postgres {
        let (initdb, postgres) = match (find("initdb"), find("postgres")) {
            (Some(i), Some(p)) => (i, p),
            _ => panic!(
                "PostgreSQL is not installed (no initdb/postgres on PATH or in /usr/lib/postgresql/*/bin): \
                 run ./build.sh setup, or apt-get install -y postgresql"
            ),
        };
        let root = is_root();
        let dir = std::env::temp_dir().join(format!(
            "npc-sync-gw-pg-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if root {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(
                ok.success(),
                "chown of {} to postgres failed",
                dir.display()
            );
        }
        let data = dir.join("data");
        let out = command(&initdb, root)
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let child = command(&postgres, root)
            .args(["-D"])
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=100",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting postgres");
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "postgres did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Accepting TCP is not yet accepting sessions: wait for a real connection.
        let pg = Postgres {
            url,
            dir,
            data,
            root,
            child,
        };
        let url = pg.url.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                loop {
                    if tokio_postgres::connect(&url, tokio_postgres::NoTls)
                        .await
                        .is_ok()
                    {
                        return;
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "postgres does not accept sessions"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .join()
        .unwrap();
        pg
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Under runuser, killing the child would orphan postgres: stop it by its data dir.
        if let Some(pg_ctl) = find("pg_ctl") {
            let _ = command(&pg_ctl, self.root)
                .args(["stop", "-m", "immediate", "-D"])
                .arg(&self.data)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    h.finish()
}

/// A port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
