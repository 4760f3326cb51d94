//! A private PostgreSQL cluster for one test (initdb + pg_ctl from Debian's postgresql package),
//! on 127.0.0.1 and a port of its own, that the test can stop and start again on the same port.
//! PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::helpers::PgDb;

pub struct PgCluster {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (apt-get install postgresql; .ci/test installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("initdb under /usr/lib/postgresql/*/bin")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if is_root() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let ok = Command::new("chown")
                .arg("postgres:")
                .arg(&data)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let cluster = PgCluster {
            _dir: dir,
            data,
            bin: pg_bin(),
            port: free_port(),
        };
        let out = cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        assert!(out.status.success(), "initdb: {out:?}");
        cluster.up();
        cluster
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        c.args(args).output().unwrap()
    }

    /// Start (again) on the same port.
    pub fn up(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.data.display()
        );
        let log = self.data.join("server.log").display().to_string();
        let data = self.data.display().to_string();
        let out = self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &opts, "start",
            ],
        );
        assert!(out.status.success(), "pg_ctl start: {out:?}");
    }

    /// Stop: `fast` (clients disconnected, clean shutdown) or `immediate` (like a crash).
    pub fn down(&self, mode: &str) {
        let data = self.data.display().to_string();
        let out = self.run("pg_ctl", &["-D", &data, "-m", mode, "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {out:?}");
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A fresh database on this cluster.
    pub fn database(&self) -> PgDb {
        PgDb::create(&self.admin_url())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}
