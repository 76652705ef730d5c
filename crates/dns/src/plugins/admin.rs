//! `admin [ADDRESS] { token_file PATH }`: where the JSON APIs and the status
//! page are served.
//!
//! Control plane (configuration). Off unless written: without an `admin`
//! directive no port serves `/api/v1/...` or the page, whatever `health`,
//! `ready` and `prometheus` say. `ADDRESS` is `:PORT`, `HOST:PORT` or
//! `[V6]:PORT` and defaults to `127.0.0.1:9154` (loopback only).
//! `token_file` names a file holding a bearer token (surrounding white space
//! ignored); requests for the APIs and the page must then carry
//! `Authorization: Bearer TOKEN`. The file is read at start; the token is
//! never logged. A relative path is taken from the Corefile's directory.
//!
//! Two `admin` directives on one address must agree on the token file; one
//! address may also serve `health`, `ready` or `prometheus` (each path stays
//! as its own directive asks, and the token guards only the admin paths).

use super::setup::{Block, Plugin, Setup};
use crate::config::AdminConfig;
use signpost_corefile::toolkit::parse_host_port;
use signpost_corefile::{Directive, Errors};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The default admin address: loopback only.
pub(crate) const DEFAULT_ADDRESS: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9154);

#[derive(Debug)]
struct Admin(AdminConfig);

pub(super) fn parse(
    directive: &Directive,
    block: &Block<'_>,
    errors: &mut Errors,
) -> Option<Box<dyn Plugin>> {
    if directive.args.len() > 1 {
        errors.push(&directive.location, "`admin` expects at most one address");
    }
    let address = match directive.arg(0) {
        None => DEFAULT_ADDRESS,
        Some(text) => {
            let Some(address) = parse_host_port(text) else {
                errors.push(
                    &directive.location,
                    format!("`admin`: expected [HOST]:PORT, found {text:?}"),
                );
                return None;
            };
            address
        }
    };
    let mut token_file = None;
    for option in &directive.block {
        match (option.name.as_str(), option.args.as_slice()) {
            ("token_file", [path]) if token_file.is_none() => {
                token_file = Some(block.base.join(path));
            }
            ("token_file", [_]) => {
                errors.push(&option.location, "`admin`: `token_file` is given twice");
            }
            ("token_file", _) => {
                errors.push(&option.location, "`admin`: `token_file` expects one path");
            }
            (other, _) => errors.push(
                &option.location,
                format!("`admin` does not take `{other}` (only `token_file PATH`)"),
            ),
        }
    }
    Some(Box::new(Admin(AdminConfig {
        address,
        token_file,
        location: directive.location.clone(),
    })))
}

impl Plugin for Admin {
    fn apply(&self, setup: &mut Setup<'_>) {
        let sites = &mut setup.process.admin;
        match sites.iter().find(|s| s.address == self.0.address) {
            None => sites.push(self.0.clone()),
            Some(site) if site.token_file == self.0.token_file => {}
            Some(site) => setup.errors.push(
                &self.0.location,
                format!(
                    "`admin` on {} names a different token_file than the one at {}",
                    self.0.address, site.location
                ),
            ),
        }
    }
}
