//! gondwana-release: the release side of signed updates (docs/updates.md).
//! Runs on the build host; the shipped `gondwana` binary only verifies.
//!
//!   gondwana-release keygen KEY_FILE
//!   gondwana-release pubkey KEY_FILE
//!   gondwana-release rotate --old KEY_FILE --new-pub HEX --seq N --out FILE
//!   gondwana-release build --key KEY_FILE --board NAME --version N [--label TEXT]
//!       [--min-version N] --root FILE [--boot NAME=FILE]... [--rotation FILE]... --out FILE
//!   gondwana-release inspect BUNDLE [--keys RELEASE_KEYS_FILE]
//!   gondwana-release record --key KEY_FILE --bundle FILE [--start UNIX]
//!       [--wave PERCENT:DELAY_SECS]... [--rotation FILE]... [--out FILE]
//!
//! A key file holds the 32-byte ed25519 seed as 64 hex digits (mode 0600).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use gondwana_core::envelope::{decode_canonical, encode};
use gondwana_core::hash::{Blake2b256, to_hex};
use gondwana_core::keys::{SigningSecret, decode_hex32};
use gondwana_core::update::{
    self, FORMAT, Manifest, Part, SignedRotation, Target, parse_release_keys,
};

const USAGE: &str = "usage: gondwana-release keygen KEY | pubkey KEY | rotate --old KEY --new-pub HEX --seq N --out FILE | build --key KEY --board NAME --version N [--label TEXT] [--min-version N] --root FILE [--boot NAME=FILE]... [--rotation FILE]... --out FILE | inspect BUNDLE [--keys FILE] | record --key KEY --bundle FILE [--start UNIX] [--wave PERCENT:DELAY_SECS]... [--rotation FILE]... [--out FILE]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("gondwana-release: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<()> {
    let (cmd, rest) = args.split_first().ok_or_else(|| anyhow!("{USAGE}"))?;
    match cmd.as_str() {
        "keygen" => keygen(Path::new(one(rest)?)),
        "pubkey" => {
            println!("{}", to_hex(&load_key(Path::new(one(rest)?))?.public_key()));
            Ok(())
        }
        "rotate" => rotate(&Options::parse(rest)?),
        "build" => build(&Options::parse(rest)?),
        "record" => record(&Options::parse(rest)?),
        "inspect" => {
            let (bundle, rest) = rest.split_first().ok_or_else(|| anyhow!("{USAGE}"))?;
            inspect(Path::new(bundle), &Options::parse(rest)?)
        }
        "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

fn one(rest: &[String]) -> Result<&str> {
    match rest {
        [x] => Ok(x),
        _ => bail!("{USAGE}"),
    }
}

/// `--name value` pairs; repeated names keep every value.
struct Options(BTreeMap<String, Vec<String>>);

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut it = args.iter();
        while let Some(name) = it.next() {
            let name = name
                .strip_prefix("--")
                .ok_or_else(|| anyhow!("unexpected argument {name:?}\n{USAGE}"))?;
            let value = it.next().ok_or_else(|| anyhow!("--{name} needs a value"))?;
            map.entry(name.to_string()).or_default().push(value.clone());
        }
        Ok(Options(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.last()).map(String::as_str)
    }

    fn need(&self, name: &str) -> Result<&str> {
        self.get(name)
            .ok_or_else(|| anyhow!("--{name} is required"))
    }

    fn all(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    fn number(&self, name: &str) -> Result<Option<u64>> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .with_context(|| format!("--{name} {v:?} is not a number"))
            })
            .transpose()
    }
}

fn keygen(path: &Path) -> Result<()> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).context("OS random source")?;
    let key = SigningSecret::from_seed(seed);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "create {} (an existing key is never overwritten)",
                path.display()
            )
        })?;
    writeln!(file, "{}", to_hex(&*key.seed()))?;
    file.sync_all()?;
    println!("{}", to_hex(&key.public_key()));
    Ok(())
}

fn load_key(path: &Path) -> Result<SigningSecret> {
    let text = fs::read_to_string(path).with_context(|| format!("read key {}", path.display()))?;
    let seed = decode_hex32(&text).with_context(|| format!("key file {}", path.display()))?;
    Ok(SigningSecret::from_seed(seed))
}

fn rotate(o: &Options) -> Result<()> {
    let old = load_key(Path::new(o.need("old")?))?;
    let seq = o
        .number("seq")?
        .ok_or_else(|| anyhow!("--seq is required"))?;
    let new_key = decode_hex32(o.need("new-pub")?).context("--new-pub")?;
    let record = update::seal_rotation(seq, &old, new_key).map_err(|e| anyhow!(e))?;
    write_new(Path::new(o.need("out")?), &encode(&record))
}

fn load_rotation(path: &str) -> Result<SignedRotation> {
    let bytes = fs::read(path).with_context(|| format!("read {path}"))?;
    decode_canonical(&bytes, 256).with_context(|| format!("{path}: not a rotation record"))
}

/// Size and BLAKE2b-256 of a file, read once.
fn describe(path: &Path, target: Target) -> Result<Part> {
    let (size, blake2b) = copy_hashing(path, &mut io::sink())?;
    Ok(Part {
        target,
        size,
        blake2b,
    })
}

fn build(o: &Options) -> Result<()> {
    let key = load_key(Path::new(o.need("key")?))?;
    let mut files: Vec<PathBuf> = vec![PathBuf::from(o.need("root")?)];
    let mut parts = vec![describe(&files[0], Target::RootSlot)?];
    for spec in o.all("boot") {
        let (name, file) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("--boot {spec:?}: NAME=FILE"))?;
        parts.push(describe(Path::new(file), Target::BootFile(name.into()))?);
        files.push(file.into());
    }
    let version = o
        .number("version")?
        .ok_or_else(|| anyhow!("--version is required"))?;
    let manifest = Manifest {
        format: FORMAT,
        board: o.need("board")?.into(),
        version,
        label: o.get("label").unwrap_or_default().into(),
        min_version: o.number("min-version")?.unwrap_or(0),
        release_key: key.public_key(),
        parts,
    };
    let rotations = o
        .all("rotation")
        .iter()
        .map(|p| load_rotation(p))
        .collect::<Result<Vec<_>>>()?;
    let head = update::seal(&manifest, &key, &rotations)?;
    let out = PathBuf::from(o.need("out")?);
    let tmp = out.with_extension("bundle.tmp");
    let mut w = io::BufWriter::new(
        File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?,
    );
    w.write_all(&head)?;
    for (file, part) in files.iter().zip(&manifest.parts) {
        // Hashed again as copied: a file that changed since it was
        // described would make a bundle no box installs.
        let copied = copy_hashing(file, &mut w)?;
        if copied != (part.size, part.blake2b) {
            bail!("{} changed while the bundle was built", file.display());
        }
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    fs::rename(&tmp, &out)?;
    println!(
        "{}: {} version {} ({}), {} parts, {} bytes, release key {}",
        out.display(),
        manifest.board,
        manifest.version,
        manifest.label,
        manifest.parts.len(),
        head.len() as u64 + manifest.parts_len(),
        to_hex(&manifest.release_key)
    );
    Ok(())
}

fn copy_hashing(path: &Path, out: &mut impl Write) -> Result<(u64, [u8; 32])> {
    let mut file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut hasher = Blake2b256::default();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((size, hasher.finish()));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        size += n as u64;
    }
}

fn inspect(path: &Path, o: &Options) -> Result<()> {
    let mut file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut prefix = [0u8; update::PREFIX_LEN];
    file.read_exact(&mut prefix)
        .context("bundle shorter than its prefix")?;
    let mut head = vec![0u8; update::head_len(&prefix)?];
    file.read_exact(&mut head)
        .context("bundle shorter than its head")?;
    let keys = match o.get("keys") {
        Some(k) => parse_release_keys(&fs::read_to_string(k)?).map_err(|e| anyhow!("{k}: {e}"))?,
        None => Vec::new(),
    };
    // Without --keys: trust whatever signed, to show the manifest.
    let decoded: update::Head = decode_canonical(&head, update::MAX_HEAD)?;
    let signer_keys = if keys.is_empty() {
        let m: Manifest = decode_canonical(&decoded.manifest, update::MAX_MANIFEST)?;
        vec![m.release_key]
    } else {
        keys
    };
    let m = update::verify_head(&head, &signer_keys)?;
    println!(
        "board {} version {} ({}) min_version {}",
        m.board, m.version, m.label, m.min_version
    );
    println!(
        "release key {} ({} rotation records)",
        to_hex(&m.release_key),
        decoded.rotations.len()
    );
    for p in &m.parts {
        let name = match &p.target {
            Target::RootSlot => "<root>",
            Target::BootFile(n) => n,
        };
        println!("  {name} {} bytes blake2b {}", p.size, to_hex(&p.blake2b));
    }
    Ok(())
}

/// The release record of a bundle (docs/updates.md, "Release record"):
/// its manifest's release, the file's size and hash, the wave plan; signed
/// by the key that signed the bundle, with the bundle's rotation records
/// unless `--rotation` names others (at most 3 fit a directory entry).
fn record(o: &Options) -> Result<()> {
    let key = load_key(Path::new(o.need("key")?))?;
    let bundle = PathBuf::from(o.need("bundle")?);
    let mut file = File::open(&bundle).with_context(|| format!("open {}", bundle.display()))?;
    let mut prefix = [0u8; update::PREFIX_LEN];
    file.read_exact(&mut prefix)
        .context("bundle shorter than its prefix")?;
    let mut head = vec![0u8; update::head_len(&prefix)?];
    file.read_exact(&mut head)
        .context("bundle shorter than its head")?;
    let decoded: update::Head = decode_canonical(&head, update::MAX_HEAD)?;
    let manifest = update::verify_head(&head, &[key.public_key()])
        .context("the bundle is not signed by --key")?;
    let (size, hash) = copy_hashing(&bundle, &mut io::sink())?;
    let waves = o
        .all("wave")
        .iter()
        .map(|w| {
            let (p, d) = w
                .split_once(':')
                .ok_or_else(|| anyhow!("--wave {w:?}: PERCENT:DELAY_SECS"))?;
            Ok(update::Wave {
                percent: p.parse().with_context(|| format!("--wave {w:?}"))?,
                after_secs: d.parse().with_context(|| format!("--wave {w:?}"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let start = match o.number("start")? {
        Some(s) => s,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    };
    let rotations = if o.all("rotation").is_empty() {
        decoded.rotations.clone()
    } else {
        o.all("rotation")
            .iter()
            .map(|p| load_rotation(p))
            .collect::<Result<Vec<_>>>()?
    };
    let body =
        update::ReleaseBody::for_bundle(&manifest, &decoded.manifest, size, hash, start, waves);
    let signed = update::seal_release(&body, &key, &rotations)?;
    let out = match o.get("out") {
        Some(out) => PathBuf::from(out),
        None => {
            let mut out = bundle.clone().into_os_string();
            out.push(".release");
            out.into()
        }
    };
    write_new(&out, &signed)?;
    println!(
        "{}: {} version {} ({}), bundle {} bytes blake2b {}",
        out.display(),
        body.board,
        body.version,
        body.label,
        size,
        to_hex(&hash)
    );
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(f.sync_all()?)
}
