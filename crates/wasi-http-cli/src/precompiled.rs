//! Components compiled ahead of time: `wasi-http compile` writes them, `serve` and
//! `run` load them with `--allow-precompiled`.
//!
//! The file is Wasmtime's artifact, then a short text trailer:
//!
//! ```text
//! <the artifact of Engine::precompile_component>
//! wasi-http precompiled 1
//! built-by wasi-http 0.1.0
//! kind http-p2 wasi:http/incoming-handler@0.2.12
//! fuel off
//! artifact 34689800 crc32 1a2b3c4d
//! wasi-http-trailer 000000a0
//! ```
//!
//! The artifact comes first so that Wasmtime maps the file as it is (it ignores
//! what follows the artifact): nothing is copied, and a 33 MiB Python component
//! answers its first request about 80 ms after launch. The trailer says what
//! engine to make before the artifact can be loaded (0.3 needs the component
//! model's async ABI), and the checksum turns a corrupted or truncated file into
//! an error instead of code that crashes (CRC-32, at memory speed: a digest
//! would not make the file more trustworthy, which the operator vouches for).
//! Wasmtime itself refuses an artifact from another Wasmtime version or other
//! engine settings.

use anyhow::{anyhow, bail, Result};
use wasi_http_host::ComponentKind;

const MAGIC: &str = "wasi-http precompiled 1\n";
/// The last line: this tag and the trailer's length in 8 hex digits.
const TAG: &str = "wasi-http-trailer ";
const LAST_LINE: usize = TAG.len() + 8 + 1;
/// Longest trailer this reads: anything longer is not ours.
const MAX_TRAILER: usize = 4096;

/// What a precompiled file's trailer says about its artifact.
pub(crate) struct Trailer {
    pub(crate) kind: ComponentKind,
    pub(crate) fuel: bool,
    artifact_len: usize,
    crc32: u32,
}

/// The trailer of `bytes`, if it is a file `wasi-http compile` wrote: `None`
/// when it is not one, an error when it claims to be one but is broken.
pub(crate) fn trailer(bytes: &[u8]) -> Option<Result<Trailer>> {
    let last = bytes.len().checked_sub(LAST_LINE).map(|at| &bytes[at..])?;
    let len = last
        .strip_prefix(TAG.as_bytes())?
        .strip_suffix(b"\n")
        .and_then(|hex| std::str::from_utf8(hex).ok())
        .and_then(|hex| usize::from_str_radix(hex, 16).ok())?;
    Some(parse(bytes, len))
}

fn parse(bytes: &[u8], len: usize) -> Result<Trailer> {
    if len > MAX_TRAILER || len + LAST_LINE > bytes.len() {
        bail!("the trailer's length is wrong: the file is corrupted or truncated");
    }
    let start = bytes.len() - LAST_LINE - len;
    let text = std::str::from_utf8(&bytes[start..bytes.len() - LAST_LINE])
        .map_err(|_| anyhow!("the trailer is not text: the file is corrupted"))?;
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC.trim_end()) {
        bail!("not a trailer this build reads (made by another version of wasi-http?): compile the component again");
    }
    let (mut kind, mut fuel, mut artifact) = (None, None, None);
    for line in lines {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "built-by" => {}
            "kind" => {
                let (what, export) = value
                    .split_once(' ')
                    .ok_or_else(|| anyhow!("bad kind line `{line}`"))?;
                let export = export.to_owned();
                kind = Some(match what {
                    "http-p3" => ComponentKind::HttpP3 { export },
                    "http-p2" => ComponentKind::HttpP2 { export },
                    "command-p3" => ComponentKind::Command { export, p3: true },
                    "command-p2" => ComponentKind::Command { export, p3: false },
                    other => bail!("unknown component kind `{other}`"),
                });
            }
            "fuel" => fuel = Some(value == "on"),
            "artifact" => {
                let parsed = value.split_once(" crc32 ").and_then(|(len, crc)| {
                    Some((len.parse().ok()?, u32::from_str_radix(crc, 16).ok()?))
                });
                artifact = Some(parsed.ok_or_else(|| anyhow!("bad artifact line `{line}`"))?);
            }
            other => bail!("unknown trailer line `{other}`"),
        }
    }
    let kind = kind.ok_or_else(|| anyhow!("no kind in the trailer"))?;
    let (artifact_len, crc32) =
        artifact.ok_or_else(|| anyhow!("no artifact line in the trailer"))?;
    if artifact_len != start {
        bail!(
            "the artifact's length is wrong: the file is corrupted or truncated; compile it again"
        );
    }
    Ok(Trailer {
        kind,
        fuel: fuel.unwrap_or(false),
        artifact_len,
        crc32,
    })
}

impl Trailer {
    /// Checks the artifact of `bytes` (the file the trailer came from).
    pub(crate) fn check(&self, bytes: &[u8]) -> Result<()> {
        let artifact = bytes
            .get(..self.artifact_len)
            .ok_or_else(|| anyhow!("the file is truncated"))?;
        if crc32fast::hash(artifact) != self.crc32 {
            bail!("the compiled code does not match its checksum: the file is corrupted or truncated; compile it again");
        }
        Ok(())
    }
}

/// Whether `bytes` is a bare Wasmtime artifact (an ELF file), e.g. from
/// `wasmtime compile`.
pub(crate) fn is_bare_artifact(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// The file for `artifact`, compiled from a component of `kind`.
pub(crate) fn write(kind: &ComponentKind, fuel: bool, artifact: &[u8]) -> Result<Vec<u8>> {
    let kind = match kind {
        ComponentKind::HttpP3 { export } => format!("http-p3 {export}"),
        ComponentKind::HttpP2 { export } => format!("http-p2 {export}"),
        ComponentKind::Command { export, p3: true } => format!("command-p3 {export}"),
        ComponentKind::Command { export, p3: false } => format!("command-p2 {export}"),
        other => bail!("cannot precompile a {}", other.describe()),
    };
    let text = format!(
        "{MAGIC}built-by wasi-http {}\nkind {kind}\nfuel {}\nartifact {} crc32 {:08x}\n",
        env!("CARGO_PKG_VERSION"),
        if fuel { "on" } else { "off" },
        artifact.len(),
        crc32fast::hash(artifact),
    );
    let mut out = Vec::with_capacity(artifact.len() + text.len() + LAST_LINE);
    out.extend_from_slice(artifact);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(format!("{TAG}{:08x}\n", text.len()).as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let kind = ComponentKind::HttpP2 {
            export: "wasi:http/incoming-handler@0.2.12".into(),
        };
        let file = write(&kind, true, b"\x7fELF artifact").unwrap();
        let trailer = trailer(&file).expect("ours").unwrap();
        trailer.check(&file).unwrap();
        assert!(trailer.fuel);
        assert!(matches!(trailer.kind, ComponentKind::HttpP2 { .. }));
        let mut bad = file.clone();
        bad[3] ^= 1;
        let err = trailer.check(&bad).unwrap_err();
        assert!(format!("{err:#}").contains("corrupted"));
        // Cut in the middle: no trailer found at all, so not ours.
        assert!(super::trailer(&file[..file.len() - 3]).is_none());
        // Cut in the artifact: the trailer's lengths disagree.
        let mut cut = file[..2].to_vec();
        cut.extend_from_slice(&file[file.len() - 120..]);
        assert!(matches!(super::trailer(&cut), Some(Err(_)) | None));
        assert!(super::trailer(b"\x00asm\x0d\x00\x01\x00").is_none());
    }
}
