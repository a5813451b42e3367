//! The data directory: the embedded database and the server's own secret keys.
//!
//! Keys are 32 random bytes in files of mode 0600, made once on first start; losing one
//! means recompiling rules (artifact key) or reissuing client secrets (secret-hash key).

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

/// File names inside the data directory.
pub const DATABASE_FILE: &str = "tokenhost.db";
pub const ARTIFACT_KEY_FILE: &str = "artifact.key";
pub const SECRET_HASH_KEY_FILE: &str = "secret-hash.key";
/// Encrypts rule secrets unless the configuration gives a key.
pub const SECRETS_KEY_FILE: &str = "secrets.key";
pub const BOOTSTRAP_FILE: &str = "bootstrap-client.json";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a 32-byte key")]
    BadKey { path: PathBuf },
    #[error("the system random source failed")]
    Random,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the directory (mode 0700 on Unix) if needed.
pub fn ensure(dir: &Path) -> Result<(), DataDirError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

/// Reads the key in `dir/name`, creating it if absent.
pub fn key(dir: &Path, name: &str) -> Result<[u8; 32], DataDirError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => bytes.try_into().map_err(|_| DataDirError::BadKey { path }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| DataDirError::Random)?;
            write_private(&path, &key)?;
            Ok(key)
        }
        Err(e) => Err(DataDirError::Io { path, source: e }),
    }
}

/// Writes a file only its owner can read (mode 0600), failing if it already exists.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), DataDirError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(contents).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("tokenhost-datadir-{}", std::process::id()));
        ensure(&dir).unwrap();
        let first = key(&dir, "k").unwrap();
        assert_eq!(key(&dir, "k").unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("k"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
