//! Compiled components kept on disk, so a restart skips compilation and maps the
//! machine code instead of decompressing and copying it.
//!
//! Each entry is the output of [`Engine::precompile_component`] in a file named
//! after a SHA-256 of the engine's compatibility hash and the component's bytes.
//! A hit is loaded with [`Component::deserialize_file`], which maps the file lazily
//! (and lets linear-memory images be mapped copy-on-write from it): for an 18 MB
//! Python guest that is the difference between about 150 ms and a few ms.
//!
//! It also loads components precompiled ahead of time ([`load_precompiled_file`]), for
//! an operator who vouches for the file (`wasi-http serve --allow-precompiled`).
//!
//! This crate holds the workspace's only `unsafe`: loading an artifact is only sound
//! for bytes wasmtime itself produced. The trust model is that of wasmtime's own
//! cache (which loads its entries the same way): whoever can write the cache
//! directory can run code in this process. We narrow it: entries are written
//! atomically (temporary file, then rename) with mode 0600, and on Unix a
//! directory or entry that is not owned by this user, or is writable by others,
//! is never loaded.

#![deny(missing_docs)]
// `unsafe` is denied everywhere but in the three loads below, each with its
// SAFETY argument.
#![deny(unsafe_code)]

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{bail, format_err, Engine};

const SUFFIX: &str = "cwasm";
const TMP_PREFIX: &str = ".tmp-";
/// A temporary file older than this belongs to a writer that died.
const STALE_TMP: Duration = Duration::from_secs(600);

/// Settings for a [`ComponentCache`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ComponentCacheConfig {
    /// When the entries add up to more than this, the least recently used ones
    /// are deleted after a new entry is written. Default: 2 GiB.
    pub max_bytes: u64,
}

impl Default for ComponentCacheConfig {
    fn default() -> Self {
        ComponentCacheConfig { max_bytes: 2 << 30 }
    }
}

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheOutcome {
    /// Mapped from an entry in the cache.
    Hit,
    /// Compiled, then stored in the cache.
    Compiled,
    /// Compiled; storing it failed (the reason was logged as a warning).
    CompiledNotStored,
}

/// Why a [`ComponentCache`] cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum CacheError {
    /// The directory could not be created or read.
    Io {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The directory belongs to another user, or others can write to it, so an
    /// entry in it could be planted.
    Untrusted {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheError::Io { dir, source } => {
                write!(f, "cache directory {}: {source}", dir.display())
            }
            CacheError::Untrusted { dir, reason } => {
                write!(f, "cache directory {} {reason}", dir.display())
            }
        }
    }
}

impl std::error::Error for CacheError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CacheError::Io { source, .. } => Some(source),
            CacheError::Untrusted { .. } => None,
        }
    }
}

/// A directory of precompiled components for one or more engines.
///
/// Several processes may share a directory: entries are replaced by rename, never
/// rewritten in place, so a process that mapped an entry keeps a valid mapping.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
    config: ComponentCacheConfig,
}

impl ComponentCache {
    /// Opens (creating it, mode 0700) the cache directory `dir`.
    pub fn open(dir: impl Into<PathBuf>, config: ComponentCacheConfig) -> Result<Self, CacheError> {
        let dir = dir.into();
        let io_err = |source| CacheError::Io {
            dir: dir.clone(),
            source,
        };
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(io_err)?;
        let meta = fs::metadata(&dir).map_err(io_err)?;
        if let Err(reason) = trusted(&meta) {
            return Err(CacheError::Untrusted { dir, reason });
        }
        Ok(ComponentCache { dir, config })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The component `wasm` (a component binary) for `engine`: mapped from the
    /// cache when an entry exists, else compiled and stored. A damaged or stale
    /// entry is replaced; a cache that cannot be written only costs the next start
    /// a compilation. Errors are compilation errors.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        // Checked at every load, not only at open: the directory may have changed
        // hands since.
        let dir_trust = fs::metadata(&self.dir)
            .map_err(|e| e.to_string())
            .and_then(|meta| trusted(&meta).map_err(str::to_owned));
        let unstored = |compiled: &[u8]| {
            from_own_bytes(engine, compiled).map(|c| (c, CacheOutcome::CompiledNotStored))
        };
        if let Err(reason) = dir_trust {
            tracing::warn!(dir = %self.dir.display(), "not using the cache directory: {reason}");
            return unstored(&engine.precompile_component(wasm)?);
        }
        let path = self.dir.join(format!("{}.{SUFFIX}", key(engine, wasm)));
        match self.load_entry(engine, &path) {
            Ok(Some(component)) => {
                // Recency for eviction; a failure only makes eviction less exact.
                let _ = fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                return Ok((component, CacheOutcome::Hit));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cache entry unusable; recompiling");
                let _ = fs::remove_file(&path);
            }
        }
        let compiled = engine.precompile_component(wasm)?;
        match self.store(&path, &compiled) {
            Ok(()) => {
                self.evict(&path);
                if let Ok(Some(component)) = self.load_entry(engine, &path) {
                    return Ok((component, CacheOutcome::Compiled));
                }
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot store the compiled component");
            }
        }
        unstored(&compiled)
    }

    /// `Ok(None)`: no entry. `Err`: an entry that must not or cannot be loaded.
    fn load_entry(&self, engine: &Engine, path: &Path) -> wasmtime::Result<Option<Component>> {
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !meta.is_file() {
            bail!("not a regular file");
        }
        trusted(&meta).map_err(|reason| format_err!("entry {reason}"))?;
        #[allow(unsafe_code)]
        // SAFETY: `deserialize_file` requires a file produced by wasmtime's
        // `precompile_component` that is not modified while mapped. Entries are
        // only ever written by `store` (a complete temporary file, renamed into
        // place) and never truncated or rewritten; the entry check above and the
        // directory check in `load` refuse files another user could have written.
        // Wasmtime itself checks the header, version and engine settings and
        // returns an error on a mismatch.
        let component = unsafe { Component::deserialize_file(engine, path)? };
        Ok(Some(component))
    }

    fn store(&self, path: &Path, compiled: &[u8]) -> io::Result<()> {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(io::Error::other)?;
        let tmp = self.dir.join(format!(
            "{TMP_PREFIX}{}-{}",
            std::process::id(),
            u64::from_le_bytes(random)
        ));
        let mut options = fs::File::options();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&tmp).and_then(|mut file| {
            file.write_all(compiled)?;
            // A crash after the rename must not leave a short entry behind.
            file.sync_all()
        });
        match written.and_then(|()| fs::rename(&tmp, path)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Deletes the least recently used entries over the size budget (never
    /// `keep`), and temporary files a dead writer left.
    fn evict(&self, keep: &Path) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TMP_PREFIX) {
                if now.duration_since(modified).unwrap_or_default() > STALE_TMP {
                    let _ = fs::remove_file(&path);
                }
            } else if meta.is_file()
                && path.extension().is_some_and(|e| e == SUFFIX)
                && path != keep
            {
                found.push((modified, meta.len(), path));
            }
        }
        let mut total = fs::metadata(keep).map_or(0, |m| m.len());
        found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
        for (_, len, path) in found {
            total = total.saturating_add(len);
            if total > self.config.max_bytes {
                tracing::debug!(path = %path.display(), "evicting cache entry");
                let _ = fs::remove_file(&path);
            }
        }
    }
}

/// The caller's word that a precompiled artifact comes from a trusted source: a
/// file made by `Engine::precompile_component` (`wasi-http compile`) that nobody
/// untrusted could write. Loading precompiled code runs it with this process's
/// rights, so there is no way to check it: only to trust it.
#[derive(Debug, Clone, Copy)]
pub struct TrustedArtifact(());

impl TrustedArtifact {
    /// Vouches for an artifact. Use only when the operator said so (a flag such
    /// as `--allow-precompiled`), never for bytes from a guest or the network.
    pub fn danger_trust_the_source() -> Self {
        TrustedArtifact(())
    }
}

/// Loads a component precompiled by `Engine::precompile_component` for an engine
/// with the same settings, from a file that starts with the artifact (bytes
/// after it are ignored, e.g. a trailer of the caller's). The file is mapped,
/// not read: the code pages a request never runs are never loaded. Wasmtime
/// checks the artifact's header, its version and the engine settings it was
/// compiled for, and returns an error on a mismatch; a corrupted artifact must
/// be caught before (a checksum, say), and the file must not change while the
/// component lives.
pub fn load_precompiled_file(
    engine: &Engine,
    path: &Path,
    trust: TrustedArtifact,
) -> wasmtime::Result<Component> {
    let TrustedArtifact(()) = trust;
    #[allow(unsafe_code)]
    // SAFETY: `deserialize_file` requires a file produced by
    // `precompile_component` that is not modified while mapped. The caller
    // vouched for the file with a `TrustedArtifact`, which only an explicit
    // `danger_` call makes (the operator's `--allow-precompiled`), and for its
    // not changing (documented above and on the flag).
    unsafe {
        Component::deserialize_file(engine, path)
    }
}

/// Loads what `precompile_component` just returned, when it could not be stored.
fn from_own_bytes(engine: &Engine, compiled: &[u8]) -> wasmtime::Result<Component> {
    #[allow(unsafe_code)]
    // SAFETY: `compiled` was produced by `precompile_component` of this engine, in
    // this process, a moment ago: the case `deserialize` is documented as safe for.
    unsafe {
        Component::deserialize(engine, compiled)
    }
}

/// Hex SHA-256 over the engine's compatibility hash and the component bytes.
fn key(engine: &Engine, wasm: &[u8]) -> String {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            // Only `write` is used; the digest is taken from the inner state.
            0
        }
    }
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.update(wasm);
    hasher
        .0
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(unix)]
fn trusted(meta: &fs::Metadata) -> Result<(), &'static str> {
    use std::os::unix::fs::MetadataExt;
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err("is owned by another user");
    }
    if meta.mode() & 0o022 != 0 {
        return Err("is writable by other users");
    }
    Ok(())
}

#[cfg(not(unix))]
fn trusted(_meta: &fs::Metadata) -> Result<(), &'static str> {
    Ok(())
}
