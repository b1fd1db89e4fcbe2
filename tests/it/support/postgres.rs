//! A database of its own on the machine's PostgreSQL (127.0.0.1:5432, role `root`, trust
//! auth), dropped at the end. Without a server, [`TestDb::create`] prints "skipped: PostgreSQL
//! not reachable" and returns `None` — except under `CI=true`, where it fails the test.

#![allow(dead_code)]

const ADMIN: &str = "host=127.0.0.1 port=5432 user=root dbname=test sslmode=disable";

fn execute(conninfo: &str, sql: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(conn);
        let result = client
            .batch_execute(sql)
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => db.message().to_owned(),
                None => e.to_string(),
            });
        drop(client);
        let _ = driver.await;
        result
    })
}

fn query_one_i64(conninfo: &str, sql: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.query_one(sql, &[]).await.unwrap().get(0)
    })
}

pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn create() -> Option<TestDb> {
        let name = format!("timattr_t_{:016x}", rand::random::<u64>());
        match execute(ADMIN, &format!("CREATE DATABASE {name}")) {
            Ok(()) => Some(TestDb { name }),
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("PostgreSQL not reachable at 127.0.0.1:5432 under CI=true: {e}")
            }
            Err(e) => {
                eprintln!("skipped: PostgreSQL not reachable at 127.0.0.1:5432 ({e})");
                None
            }
        }
    }

    /// The state URL of this database (no password: trust auth).
    pub fn url(&self) -> String {
        format!(
            "postgres://root@127.0.0.1:5432/{}?sslmode=disable",
            self.name
        )
    }

    fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port=5432 user=root dbname={} sslmode=disable",
            self.name
        )
    }

    pub fn sql(&self, sql: &str) {
        execute(&self.conninfo(), sql).unwrap();
    }

    pub fn count(&self, sql: &str) -> i64 {
        query_one_i64(&self.conninfo(), sql)
    }

    /// Ends every other connection to this database (as an operator or a failover would).
    pub fn terminate_connections(&self) -> i64 {
        query_one_i64(ADMIN, &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        ))
    }

    pub fn admin(sql: &str) {
        execute(ADMIN, sql).unwrap();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = execute(
            ADMIN,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
