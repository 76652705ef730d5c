//! Fuzzes the answers `signpost sync` reads from DNS providers. The first
//! input byte picks the reader, the rest is the body:
//!
//! | byte % 7 | reader |
//! |---|---|
//! | 0 | one AXFR message (`rfc2136`, RFC 5936 §2.2) |
//! | 1 | a PowerDNS zone document (`pdns`, `GET /servers/localhost/zones/Z`) |
//! | 2 | a Route 53 `ListResourceRecordSetsResponse` and an error body (`aws`) |
//! | 3 | a Cloudflare v4 list envelope of DNS records (`cloudflare`) |
//! | 4 | a Cloudflare v4 list envelope of zones (`cloudflare`) |
//! | 5 | a Google Cloud DNS `rrsets` list page (`google`) |
//! | 6 | an Azure Resource Manager record-set list page (`azure`) |
//!
//! Proves: no reader panics on any bytes; a message holds no more SOA
//! records than bytes; every record read from a transfer encodes again as
//! UPDATE RDATA (sync deletes what it read); every endpoint read carries a
//! name and at least one target; a page's next position is only given when
//! the answer says there is one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost_sync::endpoint::Endpoint;
use signpost_sync::provider::{aws, azure, cloudflare, google, pdns, rfc2136};

fn check(endpoints: &[Endpoint], body: &[u8]) {
    for endpoint in endpoints {
        assert!(
            !endpoint.targets.is_empty(),
            "an endpoint without targets: {endpoint:?}\nbody {:?}",
            String::from_utf8_lossy(body)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 7 {
        0 => {
            if let Some((rows, soa)) = rfc2136::transfer_message(body) {
                assert!(soa <= body.len());
                for row in rows {
                    if let Err(error) = rfc2136::rdata(row.record_type, &row.target) {
                        panic!(
                            "a transferred record does not encode again: {row:?}: {error}\nmessage {}",
                            signpost_fuzz::hex(body)
                        );
                    }
                }
            }
        }
        1 => {
            if let Ok(endpoints) = pdns::zone_endpoints(body) {
                check(&endpoints, body);
            }
        }
        2 => {
            if let Ok(page) = aws::record_sets_page(body) {
                check(&page.endpoints, body);
            }
            let _ = aws::xml_text(body, "Code");
            let _ = aws::xml_text(body, "Message");
        }
        3 => {
            let _ = cloudflare::list_page::<cloudflare::ApiRecord>(body);
        }
        4 => {
            let _ = cloudflare::list_page::<cloudflare::ZoneSummary>(body);
        }
        5 => {
            if let Ok((sets, next)) = google::list_page(body, "rrsets") {
                assert!(next.as_deref() != Some(""));
                let endpoints: Vec<Endpoint> =
                    sets.into_iter().filter_map(google::endpoint_of).collect();
                check(&endpoints, body);
            }
        }
        _ => {
            if let Ok((sets, _next)) = azure::list_page(body) {
                let endpoints: Vec<Endpoint> = sets
                    .iter()
                    .filter_map(|set| azure::endpoint_of("example.com", set))
                    .collect();
                check(&endpoints, body);
            }
        }
    }
});
