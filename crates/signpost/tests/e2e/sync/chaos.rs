//! Sync safety under chaos (issue 19): `signpost sync --policy=sync` against
//! a real PowerDNS zone while the test, step by step, writes foreign records
//! behind its back, changes the Services it publishes, and makes the
//! provider fail through a loopback proxy (500, 429, a dropped connection,
//! or a write applied whose reply is lost).
//!
//! After every step — one complete sync run later — the test checks the
//! promise external-dns makes and signpost keeps: every record set that is
//! not ours is exactly as its writer left it, and nothing appears that sync
//! could not have written. Whenever the provider answers again, ours
//! converge to what the Services ask for (a name another owner holds stays
//! theirs).
//!
//! The steps come from a seeded generator: the seed is printed at the start
//! and in every failure; `SIGNPOST_CHAOS_SEED` and `SIGNPOST_CHAOS_STEPS`
//! replay or lengthen a run (`bench/reliability/sync-chaos` runs many seeds).

use super::pdns::{Pdns, PdnsZone};
use super::*;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const ZONE: &str = "chaos.test";
const OWNER: &str = "default";
const SERVICES: usize = 5;
const FOREIGN_ONLY: usize = 3;

/// splitmix64: small, seedable, good enough to pick steps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// What the proxy does to a request it faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Pass = 0,
    /// 500 with PowerDNS's JSON error body.
    Server = 1,
    /// 429 Too Many Requests with `Retry-After`.
    Throttle = 2,
    /// The connection closes before any reply.
    Drop = 3,
    /// The request reaches PowerDNS (a write is applied), the reply is lost.
    LoseReply = 4,
}

/// A loopback HTTP proxy in front of PowerDNS's API that faults requests:
/// all of them, or only writes (PATCH), after letting `skip` of those pass.
struct FaultProxy {
    port: u16,
    fault: Arc<AtomicU8>,
    writes_only: Arc<AtomicU8>,
    skip: Arc<AtomicUsize>,
    faulted: Arc<AtomicUsize>,
}

impl FaultProxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let proxy = Self {
            port,
            fault: Arc::new(AtomicU8::new(Fault::Pass as u8)),
            writes_only: Arc::new(AtomicU8::new(0)),
            skip: Arc::new(AtomicUsize::new(0)),
            faulted: Arc::new(AtomicUsize::new(0)),
        };
        let (fault, writes_only, skip, faulted) = (
            proxy.fault.clone(),
            proxy.writes_only.clone(),
            proxy.skip.clone(),
            proxy.faulted.clone(),
        );
        std::thread::spawn(move || {
            for mut client in listener.incoming().flatten() {
                let Some((head, body)) = read_request(&mut client) else {
                    continue;
                };
                let mode = fault.load(Ordering::SeqCst);
                let is_write = !head.starts_with("GET ");
                let applies = mode != Fault::Pass as u8
                    && (writes_only.load(Ordering::SeqCst) == 0 || is_write)
                    && skip
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_err();
                if !applies {
                    let _ = client.write_all(&forward(upstream, &head, &body));
                    continue;
                }
                faulted.fetch_add(1, Ordering::SeqCst);
                let reply = |status: &str, extra: &str| {
                    let text = "{\"error\": \"injected by the chaos test\"}";
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    )
                };
                match mode {
                    1 => {
                        let _ = client.write_all(reply("500 Internal Server Error", "").as_bytes());
                    }
                    2 => {
                        let _ = client.write_all(
                            reply("429 Too Many Requests", "Retry-After: 1\r\n").as_bytes(),
                        );
                    }
                    4 => {
                        let _ = forward(upstream, &head, &body);
                    }
                    _ => {}
                }
                // Dropping `client` closes the connection.
            }
        });
        proxy
    }

    fn set(&self, fault: Fault, writes_only: bool, skip: usize) {
        self.skip.store(skip, Ordering::SeqCst);
        self.writes_only
            .store(u8::from(writes_only), Ordering::SeqCst);
        self.fault.store(fault as u8, Ordering::SeqCst);
    }
}

/// Record sets as (name, type) → values.
type Sets = BTreeMap<(String, String), BTreeSet<String>>;

fn sets(rows: &BTreeSet<Row>) -> Sets {
    let mut out = Sets::new();
    for (name, kind, value) in rows {
        out.entry((name.clone(), kind.clone()))
            .or_default()
            .insert(value.clone());
    }
    out
}

/// The zone's rows, the SOA serial masked: PowerDNS raises it on every API
/// write (`soa-edit-api`), which is PowerDNS's doing, not sync's.
fn zone_rows(zone: &PdnsZone<'_>) -> BTreeSet<Row> {
    zone.records()
        .into_iter()
        .map(|(name, kind, value)| {
            if kind != "SOA" {
                return (name, kind, value);
            }
            let mut fields: Vec<&str> = value.split_whitespace().collect();
            if fields.len() > 2 {
                fields[2] = "*";
            }
            let masked = fields.join(" ");
            (name, kind, masked)
        })
        .collect()
}

fn service_name(i: usize) -> String {
    format!("s{i}.{ZONE}")
}

fn ours_txt(i: usize) -> String {
    ownership(OWNER, &format!("service/default/s{i}"))
}

/// The test's model: foreign record sets exactly as written, the Services,
/// and every row sync may legitimately have written.
struct Model {
    foreign: Sets,
    services: BTreeMap<usize, String>,
    allowed: BTreeSet<Row>,
}

impl Model {
    /// Whether another writer holds `name`, so sync may not create there:
    /// external-dns adds creates at a name only when every current record
    /// of a managed type (A, AAAA, CNAME) there is its own, and an ownership
    /// TXT at the `a-` name says who owns the A.
    fn blocked(&self, name: &str) -> bool {
        let key = |n: &str, t: &str| (n.to_owned(), t.to_owned());
        ["A", "AAAA", "CNAME"]
            .iter()
            .any(|t| self.foreign.contains_key(&key(name, t)))
            || self.foreign.contains_key(&key(&format!("a-{name}"), "TXT"))
    }

    /// Ours as the Services ask for them, given the zone's `rows`: a name
    /// sync already holds is updated even when another writer has since put
    /// a record of another type there; a blocked name is never created.
    fn expected_ours(&self, rows: &BTreeSet<Row>) -> BTreeSet<Row> {
        let ours = self.ours_in(rows);
        let mut out = BTreeSet::new();
        for (&i, ip) in &self.services {
            let name = service_name(i);
            let held = ours.iter().any(|(n, t, _)| *n == name && t == "A");
            if self.blocked(&name) && !held {
                continue;
            }
            out.insert((name.clone(), "A".to_owned(), ip.clone()));
            out.insert((format!("a-{name}"), "TXT".to_owned(), ours_txt(i)));
        }
        out
    }

    /// Rows of the zone that are not in a foreign record set.
    fn ours_in(&self, rows: &BTreeSet<Row>) -> BTreeSet<Row> {
        rows.iter()
            .filter(|(n, t, _)| !self.foreign.contains_key(&(n.clone(), t.clone())))
            .cloned()
            .collect()
    }

    /// The safety check: foreign sets untouched, nothing unexplained.
    fn check_safe(&self, rows: &BTreeSet<Row>) -> Result<(), String> {
        let now = sets(rows);
        for (key, values) in &self.foreign {
            match now.get(key) {
                Some(found) if found == values => {}
                found => {
                    return Err(format!(
                        "foreign record set {key:?} changed: wrote {values:?}, now {found:?}"
                    ));
                }
            }
        }
        for row in self.ours_in(rows) {
            if !self.allowed.contains(&row) {
                return Err(format!("a record sync may not write appeared: {row:?}"));
            }
        }
        Ok(())
    }
}

struct Chaos<'a> {
    zone: PdnsZone<'a>,
    sync: SyncProcess,
    catalog: Catalog,
    proxy: FaultProxy,
    model: Model,
    rng: Rng,
    seed: u64,
    journal: Vec<String>,
}

impl Chaos<'_> {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "sync chaos, seed {} (replay: SIGNPOST_CHAOS_SEED={}): {what}\nsteps:\n  {}\nzone now: {:?}\nsync log:\n{}",
            self.seed,
            self.seed,
            self.journal.join("\n  "),
            zone_rows(&self.zone),
            self.sync.log()
        );
    }

    fn runs_started(&self) -> f64 {
        self.sync
            .metric("external_dns_controller_last_reconcile_timestamp_seconds")
            .unwrap_or(0.0)
    }

    /// Waits until a run that started after now has finished: runs are
    /// sequential, so the second run start after now marks the first's end.
    fn wait_one_run(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let mut first = 0.0;
        let started = wait_until(Duration::from_secs(30), || {
            first = self.runs_started();
            first > now
        });
        if !started {
            self.fail("no sync run started within 30 s");
        }
        let finished = wait_until(Duration::from_secs(60), || self.runs_started() > first);
        if !finished {
            self.fail("a sync run did not finish within 60 s");
        }
    }

    fn check_safe(&self) {
        if let Err(problem) = self.model.check_safe(&zone_rows(&self.zone)) {
            self.fail(&problem);
        }
    }

    /// Waits until ours are what the Services ask for, checking safety at
    /// every look.
    fn converge(&self) {
        let mut expected = BTreeSet::new();
        let mut last = BTreeSet::new();
        let mut unsafe_seen = None;
        let ok = wait_until(Duration::from_secs(30), || {
            let rows = zone_rows(&self.zone);
            if let Err(problem) = self.model.check_safe(&rows) {
                unsafe_seen = Some(problem);
                return true;
            }
            last = self.model.ours_in(&rows);
            expected = self.model.expected_ours(&rows);
            last == expected
        });
        if let Some(problem) = unsafe_seen {
            self.fail(&problem);
        }
        if !ok {
            self.fail(&format!(
                "ours did not converge within 30 s:\nexpected {expected:?}\nfound    {last:?}"
            ));
        }
    }

    /// Whether sync currently holds `name`'s A record (its rows in the zone).
    fn held_by_sync(&self, name: &str) -> bool {
        let rows = zone_rows(&self.zone);
        let ours = self.model.ours_in(&rows);
        ours.iter()
            .any(|(n, _, _)| n == name || *n == format!("a-{name}"))
    }

    fn foreign_write(&mut self) {
        let pick = self.rng.below(SERVICES + FOREIGN_ONLY);
        let (name, service) = if pick < SERVICES {
            (service_name(pick), Some(pick))
        } else {
            (format!("f{}.{ZONE}", pick - SERVICES), None)
        };
        // Which record set: an A (or its ownership TXT claim), or a type sync
        // never manages at that name.
        let kind = self.rng.below(4);
        let (set_name, set_type, value) = match kind {
            0 | 1 => (
                name.clone(),
                "A".to_owned(),
                format!("198.51.100.{}", 1 + self.rng.below(250)),
            ),
            2 => (
                format!("a-{name}"),
                "TXT".to_owned(),
                ownership("other-owner", "service/other/x"),
            ),
            _ => (
                name.clone(),
                "AAAA".to_owned(),
                format!("2001:db8::{:x}", 1 + self.rng.below(250)),
            ),
        };
        let key = (set_name.clone(), set_type.clone());
        let exists = self.model.foreign.contains_key(&key);
        // An A or claim at a name a Service asks for is only written while
        // that Service is absent and sync holds nothing there: a write racing
        // a run in flight could be overwritten by external-dns's design (no
        // compare-and-swap), which is not what this test is about.
        if set_type != "AAAA"
            && !exists
            && (service.is_some_and(|i| self.model.services.contains_key(&i))
                || self.held_by_sync(&name))
        {
            self.journal.push(format!(
                "foreign write at {set_name} {set_type}: skipped (ours)"
            ));
            return;
        }
        if exists && self.rng.chance(50) {
            self.pdns_patch(&set_name, &set_type, None);
            self.model.foreign.remove(&key);
            self.journal
                .push(format!("foreign delete {set_name} {set_type}"));
        } else {
            let mut values = BTreeSet::from([value]);
            if set_type == "A" && self.rng.chance(30) {
                values.insert(format!("198.51.100.{}", 1 + self.rng.below(250)));
            }
            self.pdns_patch(&set_name, &set_type, Some(&values));
            self.journal
                .push(format!("foreign write {set_name} {set_type} {values:?}"));
            self.model.foreign.insert(key, values);
        }
    }

    /// Replaces (`Some`) or deletes (`None`) one record set directly on
    /// PowerDNS, bypassing the proxy.
    fn pdns_patch(&self, name: &str, kind: &str, values: Option<&BTreeSet<String>>) {
        let rrset = match values {
            Some(values) => {
                let records: Vec<String> = values
                    .iter()
                    .map(|v| {
                        let content = if kind == "TXT" {
                            format!("\\\"{v}\\\"")
                        } else {
                            v.clone()
                        };
                        format!("{{\"content\":\"{content}\",\"disabled\":false}}")
                    })
                    .collect();
                format!(
                    "{{\"name\":\"{name}.\",\"type\":\"{kind}\",\"ttl\":300,\"changetype\":\"REPLACE\",\"records\":[{}]}}",
                    records.join(",")
                )
            }
            None => {
                format!("{{\"name\":\"{name}.\",\"type\":\"{kind}\",\"changetype\":\"DELETE\"}}")
            }
        };
        let (status, text) = self.zone.pdns.api(
            "PATCH",
            &format!("/api/v1/servers/localhost/zones/{ZONE}."),
            Some(&format!("{{\"rrsets\":[{rrset}]}}")),
        );
        if status != 204 {
            self.fail(&format!(
                "foreign write refused by PowerDNS: {status} {text}"
            ));
        }
    }

    fn catalog_change(&mut self) {
        let i = self.rng.below(SERVICES);
        if self.model.services.contains_key(&i) && self.rng.chance(40) {
            self.catalog.remove(&format!("s{i}.yaml"));
            self.model.services.remove(&i);
            self.journal.push(format!("remove Service s{i}"));
            return;
        }
        let ip = format!("192.0.2.{}", 1 + self.rng.below(250));
        self.catalog
            .service(&format!("s{i}"), &service_name(i), &ip, "");
        self.model
            .allowed
            .insert((service_name(i), "A".to_owned(), ip.clone()));
        self.model.allowed.insert((
            format!("a-{}", service_name(i)),
            "TXT".to_owned(),
            ours_txt(i),
        ));
        self.journal.push(format!("Service s{i} → {ip}"));
        self.model.services.insert(i, ip);
    }

    fn step(&mut self) {
        let roll = self.rng.below(100);
        if roll < 35 {
            self.foreign_write();
        } else if roll < 70 {
            self.catalog_change();
        } else {
            // A fault episode: the provider misbehaves while things change.
            let fault = match self.rng.below(4) {
                0 => Fault::Server,
                1 => Fault::Throttle,
                2 => Fault::Drop,
                _ => Fault::LoseReply,
            };
            let writes_only = self.rng.chance(50);
            let skip = self.rng.below(3);
            self.journal.push(format!(
                "fault {fault:?} on {} after {skip} passed",
                if writes_only {
                    "writes"
                } else {
                    "every request"
                }
            ));
            self.proxy.set(fault, writes_only, skip);
            for _ in 0..=self.rng.below(2) {
                if self.rng.chance(50) {
                    self.catalog_change();
                } else {
                    self.foreign_write();
                }
                self.wait_one_run();
                self.check_safe();
            }
            self.proxy.set(Fault::Pass, false, 0);
            self.journal.push("fault cleared".to_owned());
        }
        self.wait_one_run();
        self.check_safe();
        self.converge();
    }
}

/// Issue 19, sync safety: ~50 seeded steps of foreign writes, Service changes
/// and provider faults; after each, nothing not ours changed and ours
/// converge.
#[test]
fn sync_chaos_never_touches_foreign_records() {
    let seed: u64 = std::env::var("SIGNPOST_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(19);
    let steps: usize = std::env::var("SIGNPOST_CHAOS_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    eprintln!("sync chaos: seed {seed}, {steps} steps");
    let pdns = Pdns::start(
        "pdns-chaos",
        &[ZONE],
        "chaos-api-key-5e6f",
        None,
        None,
        false,
    );
    let _cleanup = RemoveOnDrop(pdns.dir.clone());
    let proxy = FaultProxy::start(pdns.api_port);
    let zone = PdnsZone {
        pdns: &pdns,
        zone: ZONE,
        sync_key: pdns.key.clone(),
    };
    // Everything in the zone before sync starts (SOA, NS) is foreign.
    let model = Model {
        foreign: sets(&zone_rows(&zone)),
        services: BTreeMap::new(),
        allowed: BTreeSet::new(),
    };
    let catalog = Catalog::new();
    let args = vec![
        "--source=service".to_owned(),
        "--policy=sync".to_owned(),
        "--interval=500ms".to_owned(),
        format!("--domain-filter={ZONE}"),
        format!("--txt-owner-id={OWNER}"),
        "--provider=pdns".to_owned(),
        format!("--pdns-server=http://127.0.0.1:{}", proxy.port),
        format!("--pdns-api-key={}", pdns.key),
    ];
    let sync = SyncProcess::start(&catalog, &args, &[]);
    sync.wait_first_sync();
    let mut chaos = Chaos {
        zone,
        sync,
        catalog,
        proxy,
        model,
        rng: Rng(seed),
        seed,
        journal: Vec::new(),
    };
    for step in 0..steps {
        chaos.journal.push(format!("-- step {step}"));
        chaos.step();
    }
    let faulted = chaos.proxy.faulted.load(Ordering::SeqCst);
    assert!(
        faulted > 0,
        "seed {seed}: no request was faulted; the test proved nothing about errors"
    );
    eprintln!(
        "sync chaos: seed {seed}: {steps} steps, {faulted} requests faulted, {} foreign record sets intact, {} of ours",
        chaos.model.foreign.len(),
        chaos.model.expected_ours(&zone_rows(&chaos.zone)).len()
    );
    chaos.zone.pdns.daemon.stop();
}
