//! A throwaway PostgreSQL database per test, on the server `TOKENHOST_TEST_DATABASE_URL`
//! names (`make test` starts one and sets it).

use tokio_postgres::NoTls;

/// The server the tests may create databases on.
pub fn server_url() -> String {
    std::env::var("TOKENHOST_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "TOKENHOST_TEST_DATABASE_URL is not set: run the tests with `make test`, which \
             starts PostgreSQL and sets it, or set it to a postgres:// URL of a role that may \
             create databases"
        )
    })
}

/// `url` naming the database `name` instead of its own.
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{name}{query}")
}

/// Runs `f` with a client connected to `url`, on a runtime of its own in a thread of its
/// own (so that sync and async tests alike can call it).
fn with_client<T: Send + 'static>(
    url: &str,
    f: impl AsyncFnOnce(&tokio_postgres::Client) -> T + Send + 'static,
) -> Result<T, tokio_postgres::Error> {
    let url = url.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
            let driver = tokio::spawn(connection);
            let out = f(&client).await;
            drop(client);
            let _ = driver.await;
            Ok(out)
        })
    })
    .join()
    .expect("SQL thread")
}

/// Runs `sql` on `url`.
pub fn execute(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let sql = sql.to_string();
    with_client(url, async move |client| client.batch_execute(&sql).await)?
}

/// The first column of the first row of `sql`, as text.
pub fn query_text(url: &str, sql: &str) -> String {
    let query = sql.to_string();
    with_client(url, async move |client| {
        client
            .query_one(&query, &[])
            .await
            .map(|row| row.get::<_, String>(0))
    })
    .and_then(|row| row)
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A database made for one test, dropped (with whatever still connects to it) after.
pub struct Database {
    pub url: String,
    name: String,
}

impl Database {
    pub fn fresh() -> Database {
        let server = server_url();
        let name = format!(
            "tokenhost_it_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        execute(&server, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create a test database on {server}: {e}"));
        Database {
            url: with_database(&server, &name),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = execute(
            &server_url(),
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/a?sslmode=disable", "b"),
            "postgres://u:p@h:5432/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "b"), "postgres://h/b");
    }
}
