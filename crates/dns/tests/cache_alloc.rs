//! Allocation budget of cached answers (design.md, "The hot path"): after
//! warm-up, looking a query up in the cache and writing the cached answer
//! allocates nothing, for hits (success and denial, EDNS or not, any letter
//! case, truncated or not), stale hits and misses, prefetch decisions included.

// The counting allocator needs `unsafe`; it only forwards to `System`.
#![allow(unsafe_code)]

use signpost_corefile::Location;
use signpost_dns::cache::{
    Cache, CacheConfig, Lookup, PrefetchConfig, ServeStaleConfig, StaleMode,
};
use signpost_proto::{Name, parse_query};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn query(id: u16, name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut packet = vec![
        (id >> 8) as u8,
        id as u8,
        0x01,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        u8::from(edns),
    ];
    packet.extend(wire(name));
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    if edns {
        packet.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    }
    packet
}

/// A reply to `name` A: `answers` A records with `ttl` (owner compressed to the
/// question), or NXDOMAIN with an SOA when `answers` is 0; an OPT at the end.
fn reply(name: &str, answers: u8, ttl: u8) -> Vec<u8> {
    let code = if answers == 0 { 3 } else { 0 };
    let authorities = u8::from(answers == 0);
    let mut packet = vec![
        0,
        0,
        0x81,
        0x80 | code,
        0,
        1,
        0,
        answers,
        0,
        authorities,
        0,
        1,
    ];
    packet.extend(wire(name));
    packet.extend_from_slice(&[0, 1, 0, 1]);
    for i in 0..answers {
        packet.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, ttl, 0, 4, 192, 0, 2, i]);
    }
    if answers == 0 {
        packet.extend(wire("example"));
        packet.extend_from_slice(&[0, 6, 0, 1, 0, 0, 0, 60]);
        let mut rdata = wire("ns.example");
        rdata.extend(wire("hostmaster.example"));
        for value in [1u32, 3600, 600, 86400, 30] {
            rdata.extend_from_slice(&value.to_be_bytes());
        }
        packet.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        packet.extend(rdata);
    }
    packet.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    packet
}

/// Zero allocations per cached answer after warm-up.
#[test]
fn cached_answers_do_not_allocate() {
    let mut config = CacheConfig::new(Location {
        file: Arc::from(Path::new("Corefile")),
        line: 1,
    });
    config.prefetch = Some(PrefetchConfig::default());
    config.serve_stale = Some(ServeStaleConfig {
        duration: Duration::from_secs(3600),
        mode: StaleMode::Immediate,
    });
    let cache = Cache::new(config, &[Name::root()], "dns://:53".into());
    let start = Instant::now();
    let stored = [
        ("www.example", 2u8, 60u8),
        ("many.example", 60, 60),
        ("missing.example", 0, 60),
        ("old.example", 1, 10),
    ];
    for (name, answers, ttl) in stored {
        let packet = query(1, name, 1, false);
        let parsed = parse_query(&packet).unwrap();
        assert!(
            cache
                .insert(&parsed, &reply(name, answers, ttl), start)
                .is_some()
        );
    }
    let now = start + Duration::from_secs(20);
    let queries = [
        query(1, "www.example", 1, false),
        query(2, "WWW.Example", 1, true),
        query(3, "many.example", 1, false), // truncated at 512
        query(4, "many.example", 1, true),
        query(5, "missing.example", 1, true),
        query(6, "old.example", 1, false), // stale
        query(7, "absent.example", 1, false),
        query(8, "www.example", 28, false),
    ];
    let mut out = vec![0u8; 65535];
    let run = |out: &mut Vec<u8>| {
        let mut written = 0;
        let mut stale = 0;
        for packet in &queries {
            let parsed = parse_query(packet).unwrap();
            let limit = parsed.udp_limit();
            match cache.lookup(&parsed, now) {
                Lookup::Hit(entry) => {
                    written += entry.write(&parsed, now, out, limit).len;
                    let _ = cache.wants_prefetch(&entry, now);
                }
                Lookup::Stale(entry) => {
                    written += entry.write(&parsed, now, out, limit).len;
                    cache.note_served_stale();
                    stale += 1;
                }
                Lookup::Miss => written += 1,
            }
        }
        assert_eq!(stale, 1, "old.example is served stale");
        written
    };
    // Warm-up: the map's epoch-based reclamation registers each thread once.
    let expected = run(&mut out);
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    for _ in 0..1000 {
        assert_eq!(run(&mut out), expected);
    }
    COUNTING.store(false, Ordering::Relaxed);
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations during 8,000 cache lookups and answers"
    );
}
