//! The store on both engines: every test here runs once on SQLite in a
//! temp dir and once on PostgreSQL in a database of its own, created in the
//! cluster `CM_TEST_POSTGRES_URL` names (`scripts/with-postgres.sh cargo
//! test -p cm-server --test store` starts a throwaway one). Without that
//! variable the PostgreSQL variants say so and pass, except under CI, where
//! they fail (`support::require`).
//!
//! One file per concept of the store (cookbooks, documents, enrollment,
//! nodes, ...), each listing its tests in one [`on_both_engines!`]; the
//! cases are built from [`fixtures`].

#[path = "../support/mod.rs"]
mod support;

use cm_server::store::Store;

// ---------------------------------------------------------------- harness

/// A store on a fresh database, and what it takes to reopen and drop it.
struct Db {
    store: Store,
    url: String,
    /// SQLite: the directory holding the file.
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the database made for this test.
    pg: Option<support::PgDatabase>,
}

impl Db {
    async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/state.db", dir.path().display());
        Db {
            store: Store::open(&url).await.unwrap(),
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A database of its own in the cluster `CM_TEST_POSTGRES_URL` names.
    async fn postgres(test: &str) -> Option<Db> {
        let pg = support::PgDatabase::create(test).await?;
        Some(Db {
            store: Store::open(&pg.url).await.unwrap(),
            url: pg.url.clone(),
            _dir: None,
            pg: Some(pg),
        })
    }

    async fn reopen(&mut self) {
        self.store.close().await;
        self.store = Store::open(&self.url).await.unwrap();
    }

    async fn drop_database(self) {
        self.store.close().await;
        if let Some(pg) = self.pg {
            pg.drop().await;
        }
    }
}

/// Each test function of the invoking module, once per engine (as
/// `<module>::sqlite::<test>` and `<module>::postgres::<test>`).
macro_rules! on_both_engines {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let mut db = crate::Db::sqlite().await;
                    super::$test(&mut db).await;
                    db.drop_database().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(mut db) = crate::Db::postgres(stringify!($test)).await else {
                        return;
                    };
                    super::$test(&mut db).await;
                    db.drop_database().await;
                }
            )*
        }
    };
}

mod fixtures;

mod admins;
mod agent_versions;
mod audit;
mod cookbooks;
mod deletions;
mod documents;
mod enrollment;
mod fleet;
mod membership;
mod nodes;
mod plan_checks;
mod reopen;
mod runs;
mod secrets;
