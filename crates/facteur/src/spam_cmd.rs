//! `facteur spam train|forget|test|status`: the content classifier's models from the command
//! line. Works on the store directly, so it runs beside the server (another process); the
//! server reads the models from the store for each message, so what is learned here counts at
//! once.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use filter::{Class, Classifier, LearnReport, Verdict};
use serde_json::{Value, json};
use store::{AccountId, SpamLearnOutcome, SpamModel};

use crate::Failure;
use crate::admin::emit;
use crate::cli::{Cli, SpamCmd};
use crate::context::Context;

/// Largest message read for training or testing; larger ones are skipped with a warning
/// (the SMTP size limit is far lower by default).
const MAX_MESSAGE_BYTES: u64 = 64 * 1024 * 1024;
/// Messages learned at once: the store's writer group-commits them (one fsync per batch).
const LEARN_CONCURRENCY: usize = 32;

/// Where messages come from: one file per message (a directory, or a Maildir's cur/ and new/),
/// or an mbox file.
enum Source {
    Files(Vec<PathBuf>),
    Mbox(PathBuf),
}

fn source(path: &Path) -> Result<Source, Failure> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Failure::op(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_dir() {
        let mut files = Vec::new();
        let mut dirs = vec![path.to_path_buf()];
        // A Maildir keeps its messages in cur/ and new/.
        for sub in ["cur", "new"] {
            if path.join(sub).is_dir() {
                dirs.push(path.join(sub));
            }
        }
        for d in dirs {
            let entries = std::fs::read_dir(&d)
                .map_err(|e| Failure::op(format!("cannot list {}: {e}", d.display())))?;
            for e in entries.flatten() {
                let p = e.path();
                let hidden = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'));
                if !hidden && e.file_type().is_ok_and(|t| t.is_file()) {
                    files.push(p);
                }
            }
        }
        files.sort();
        return Ok(Source::Files(files));
    }
    let mut head = [0u8; 5];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| Failure::op(format!("cannot read {}: {e}", path.display())))?;
    if &head[..n] == b"From " {
        Ok(Source::Mbox(path.to_path_buf()))
    } else {
        Ok(Source::Files(vec![path.to_path_buf()]))
    }
}

/// One message file, without an mbox "From " line at its top.
fn read_message(path: &Path) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_MESSAGE_BYTES {
        return Err(format!("larger than {MAX_MESSAGE_BYTES} bytes"));
    }
    let raw = std::fs::read(path).map_err(|e| e.to_string())?;
    Ok(strip_from_line(raw))
}

fn strip_from_line(raw: Vec<u8>) -> Vec<u8> {
    if raw.starts_with(b"From ") {
        match raw.iter().position(|&b| b == b'\n') {
            Some(nl) => raw[nl + 1..].to_vec(),
            None => Vec::new(),
        }
    } else {
        raw
    }
}

/// Splits an mbox (RFC 4155): a message starts at each "From " line after an empty line (or at
/// the top); ">From " quoting (mboxrd) loses one '>'. Calls `each` per message, streaming.
fn read_mbox(
    path: &Path,
    mut each: impl FnMut(Result<Vec<u8>, String>) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let file = File::open(path)
        .map_err(|e| Failure::op(format!("cannot read {}: {e}", path.display())))?;
    let mut reader = BufReader::new(file);
    let mut msg: Vec<u8> = Vec::new();
    let mut started = false;
    let mut too_big = false;
    let mut prev_blank = true;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Failure::op(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 || (prev_blank && line.starts_with(b"From ")) {
            if started {
                each(if too_big {
                    Err(format!("larger than {MAX_MESSAGE_BYTES} bytes"))
                } else {
                    Ok(std::mem::take(&mut msg))
                })?;
            }
            msg.clear();
            too_big = false;
            started = n != 0;
            prev_blank = false;
            if n == 0 {
                return Ok(());
            }
            continue;
        }
        prev_blank = line == b"\n" || line == b"\r\n";
        if too_big {
            continue;
        }
        let body = if line.starts_with(b">")
            && line
                .iter()
                .skip_while(|&&b| b == b'>')
                .take(5)
                .eq(b"From ".iter())
        {
            &line[1..]
        } else {
            &line[..]
        };
        if msg.len() as u64 + body.len() as u64 > MAX_MESSAGE_BYTES {
            too_big = true;
            msg.clear();
            continue;
        }
        msg.extend_from_slice(body);
    }
}

async fn account_id(ctx: &Context, address: &str) -> Result<AccountId, Failure> {
    let (local, domain) = directory::parse_address(address)
        .map_err(|e| Failure::config(format!("{address}: {e}")))?;
    let acc = ctx
        .store
        .account_get(&local, &domain)
        .await?
        .ok_or_else(|| Failure::op(format!("no account {address}")))?;
    Ok(acc.id)
}

#[derive(Default)]
struct Summary {
    learned: u64,
    relearned: u64,
    already: u64,
    forgotten: u64,
    not_learned: u64,
    skipped: u64,
}

impl Summary {
    fn count(&mut self, r: &LearnReport) {
        match r.global {
            SpamLearnOutcome::Learned => self.learned += 1,
            SpamLearnOutcome::Relearned => self.relearned += 1,
            SpamLearnOutcome::AlreadyLearned => self.already += 1,
            SpamLearnOutcome::Unlearned => self.forgotten += 1,
            SpamLearnOutcome::NotLearned => self.not_learned += 1,
        }
    }
    fn json(&self) -> Value {
        json!({
            "learned": self.learned,
            "relearned": self.relearned,
            "already_learned": self.already,
            "forgotten": self.forgotten,
            "not_learned": self.not_learned,
            "skipped": self.skipped,
        })
    }
}

/// Learns (class given) or forgets (None) every message of `paths`.
async fn learn_all(
    ctx: &Context,
    classifier: &Classifier,
    paths: &[PathBuf],
    class: Option<Class>,
    account: Option<AccountId>,
    bar: &indicatif::ProgressBar,
) -> Result<Summary, Failure> {
    let mut summary = Summary::default();
    let mut pending: tokio::task::JoinSet<Result<LearnReport, filter::Error>> =
        tokio::task::JoinSet::new();
    let store = ctx.store.clone();

    // Feeds one message to the learning tasks, keeping at most LEARN_CONCURRENCY in flight.
    async fn drain(
        pending: &mut tokio::task::JoinSet<Result<LearnReport, filter::Error>>,
        summary: &mut Summary,
        bar: &indicatif::ProgressBar,
        keep: usize,
    ) -> Result<(), Failure> {
        while pending.len() > keep {
            if let Some(done) = pending.join_next().await {
                let report = done.map_err(|e| Failure::op(format!("learning failed: {e}")))??;
                summary.count(&report);
                bar.inc(1);
            }
        }
        Ok(())
    }

    let submit = |raw: Vec<u8>, pending: &mut tokio::task::JoinSet<_>| {
        let c = classifier.clone();
        let store = store.clone();
        pending.spawn(async move {
            let features = filter::extract_raw(&raw, &c.settings.limits);
            match class {
                Some(class) => c.learn(&store, &raw, &features, class, account).await,
                None => c.unlearn(&store, &raw, &features, account).await,
            }
        });
    };

    for path in paths {
        match source(path)? {
            Source::Files(files) => {
                bar.inc_length(files.len() as u64);
                for f in files {
                    match read_message(&f) {
                        Ok(raw) => submit(raw, &mut pending),
                        Err(e) => {
                            bar.suspend(|| eprintln!("facteur: skipped {}: {e}", f.display()));
                            summary.skipped += 1;
                            bar.inc(1);
                        }
                    }
                    drain(&mut pending, &mut summary, bar, LEARN_CONCURRENCY).await?;
                }
            }
            Source::Mbox(file) => {
                // A reader thread splits the mbox; the channel bounds what waits in memory.
                let (tx, mut rx) = tokio::sync::mpsc::channel(LEARN_CONCURRENCY);
                let name = file.display().to_string();
                let reader = tokio::task::spawn_blocking(move || {
                    read_mbox(&file, |m| {
                        tx.blocking_send(m)
                            .map_err(|_| Failure::op("learning stopped"))
                    })
                });
                while let Some(m) = rx.recv().await {
                    bar.inc_length(1);
                    match m {
                        Ok(raw) => submit(raw, &mut pending),
                        Err(e) => {
                            bar.suspend(|| eprintln!("facteur: skipped a message of {name}: {e}"));
                            summary.skipped += 1;
                            bar.inc(1);
                        }
                    }
                    drain(&mut pending, &mut summary, bar, LEARN_CONCURRENCY).await?;
                }
                reader
                    .await
                    .map_err(|e| Failure::op(format!("reading {name} failed: {e}")))??;
            }
        }
    }
    drain(&mut pending, &mut summary, bar, 0).await?;
    Ok(summary)
}

fn progress(cli: &Cli) -> indicatif::ProgressBar {
    if cli.json {
        return indicatif::ProgressBar::hidden();
    }
    // Drawn on standard error, and only when it is a terminal (indicatif hides it otherwise).
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {msg} [{bar:40}] {pos}/{len} messages ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn totals_json(ctx: &Context, account: Option<AccountId>) -> Result<Value, Failure> {
    let mut models = vec![SpamModel::Global];
    if let Some(a) = account {
        models.push(SpamModel::Account(a));
    }
    let counts = ctx.store.spam_counts(&models, &[]).await?;
    let settings = ctx.config.classifier.settings();
    let mut v = json!({});
    for c in counts {
        let (name, min) = match c.model {
            SpamModel::Global => ("global", settings.min_learned),
            SpamModel::Account(_) => ("account", settings.min_account_learned),
        };
        v[name] = json!({
            "ham": c.totals.ham,
            "spam": c.totals.spam,
            "ready": c.totals.ham >= min && c.totals.spam >= min
                && (c.totals.format == filter::FEATURE_VERSION),
            "needs_each": min,
            "feature_format": c.totals.format,
        });
    }
    Ok(v)
}

fn totals_text(v: &Value) -> String {
    let mut out = String::new();
    for name in ["global", "account"] {
        let m = &v[name];
        if m.is_null() {
            continue;
        }
        out.push_str(&format!(
            "{name} model: {} ham, {} spam learned{}\n",
            m["ham"],
            m["spam"],
            if m["ready"].as_bool() == Some(true) {
                String::new()
            } else {
                format!(" (not ready: needs {} of each)", m["needs_each"])
            }
        ));
    }
    out.trim_end().to_string()
}

fn verdict_json(v: &Verdict) -> Value {
    json!({
        "verdict": v.label.as_str(),
        "probability": v.prob,
        "score": v.score,
        "global": v.global,
        "account": v.account,
        "features": v.features,
        "truncated": v.truncated,
        "reasons": v.reasons,
    })
}

fn verdict_text(v: &Verdict) -> String {
    let mut out = format!(
        "verdict: {} (probability {:.4}, score {:+.2})\n",
        v.label.as_str(),
        v.prob,
        v.score
    );
    for (name, p) in [("global", v.global), ("account", v.account)] {
        match p {
            Some(p) => out.push_str(&format!("{name} model: {p:.4}\n")),
            None => out.push_str(&format!("{name} model: not used (not ready)\n")),
        }
    }
    out.push_str(&format!(
        "features: {}{}\nreasons ({}, strongest first; weight > 0 is spammy):\n",
        v.features,
        if v.truncated { " (limit reached)" } else { "" },
        v.reasons.len()
    ));
    for r in &v.reasons {
        out.push_str(&format!(
            "  {:+7.2}  {:<7}  ham {:>5}  spam {:>5}  {}\n",
            r.weight, r.model, r.ham, r.spam, r.token
        ));
    }
    out.trim_end().to_string()
}

pub async fn run(cli: &Cli, cmd: &SpamCmd) -> Result<(), Failure> {
    match cmd {
        SpamCmd::Allow(c) => return crate::lists_cmd::run(cli, store::ListKind::Allow, c).await,
        SpamCmd::Block(c) => return crate::lists_cmd::run(cli, store::ListKind::Block, c).await,
        _ => {}
    }
    let ctx = Context::open(cli).await?;
    let classifier = Classifier::new(ctx.config.classifier.settings());
    match cmd {
        SpamCmd::Train { spam, ham, account } => {
            if spam.is_empty() && ham.is_empty() {
                return Err(Failure::config("give --spam and/or --ham"));
            }
            let account = match account {
                Some(a) => Some(account_id(&ctx, a).await?),
                None => None,
            };
            let bar = progress(cli);
            let mut out = json!({});
            for (name, paths, class) in [("spam", spam, Class::Spam), ("ham", ham, Class::Ham)] {
                if paths.is_empty() {
                    continue;
                }
                bar.set_message(name);
                let s = learn_all(&ctx, &classifier, paths, Some(class), account, &bar).await?;
                out[name] = s.json();
            }
            bar.finish_and_clear();
            out["models"] = totals_json(&ctx, account).await?;
            emit(cli, out.clone(), || {
                let mut t = String::new();
                for name in ["spam", "ham"] {
                    let s = &out[name];
                    if s.is_null() {
                        continue;
                    }
                    t.push_str(&format!(
                        "{name}: {} learned, {} moved from the other class, {} already learned, {} skipped\n",
                        s["learned"], s["relearned"], s["already_learned"], s["skipped"]
                    ));
                }
                t.push_str(&totals_text(&out["models"]));
                t
            });
        }
        SpamCmd::Forget { paths, account } => {
            let account = match account {
                Some(a) => Some(account_id(&ctx, a).await?),
                None => None,
            };
            let bar = progress(cli);
            let s = learn_all(&ctx, &classifier, paths, None, account, &bar).await?;
            bar.finish_and_clear();
            let mut out = s.json();
            out["models"] = totals_json(&ctx, account).await?;
            emit(cli, out.clone(), || {
                format!(
                    "{} forgotten, {} had not been learned, {} skipped\n{}",
                    s.forgotten,
                    s.not_learned,
                    s.skipped,
                    totals_text(&out["models"])
                )
            });
        }
        SpamCmd::Test { file, account } => {
            let account = match account {
                Some(a) => Some(account_id(&ctx, a).await?),
                None => None,
            };
            let raw = read_message(file)
                .map_err(|e| Failure::op(format!("cannot read {}: {e}", file.display())))?;
            let features = filter::extract_raw(&raw, &classifier.settings.limits);
            let v = classifier
                .score_stored(&ctx.store, &features, account)
                .await?;
            emit(cli, verdict_json(&v), || verdict_text(&v));
        }
        SpamCmd::Status { account } => {
            let account = match account {
                Some(a) => Some(account_id(&ctx, a).await?),
                None => None,
            };
            let v = totals_json(&ctx, account).await?;
            emit(cli, v.clone(), || totals_text(&v));
        }
        SpamCmd::Allow(_) | SpamCmd::Block(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_split_and_unquote() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("box");
        std::fs::write(
            &p,
            "From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\n>From here\n\n\
             From c@d Mon Jan  1 00:00:00 2024\nSubject: two\n\nsee you\n",
        )
        .expect("write");
        let mut got = Vec::new();
        read_mbox(&p, |m| {
            got.push(String::from_utf8(m.expect("message")).expect("utf8"));
            Ok(())
        })
        .expect("read");
        assert_eq!(
            got,
            [
                "Subject: one\n\nbody\nFrom here\n\n",
                "Subject: two\n\nsee you\n"
            ]
        );
    }
}
