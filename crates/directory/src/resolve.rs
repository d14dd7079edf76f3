//! Where mail for an address goes: accounts, aliases (expanded recursively) and catch-alls.

use std::collections::{HashMap, HashSet};

use store::{AccountRecord, DomainRecord};

use crate::address::{self, Address};
use crate::{Directory, DirectoryError};

/// Deepest chain of aliases (and catch-alls) followed from one address.
pub const MAX_ALIAS_DEPTH: usize = 10;

/// Recipients an address resolves to. Empty when the address is unknown in a local domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Local accounts, deduplicated, in expansion order. Disabled accounts are included with
    /// `enabled == false`: the caller rejects them.
    pub local: Vec<AccountRecord>,
    /// Remote addresses to forward to, deduplicated, in expansion order.
    pub external: Vec<String>,
}

impl Resolution {
    pub fn is_empty(&self) -> bool {
        self.local.is_empty() && self.external.is_empty()
    }
}

impl Directory {
    /// Resolves a recipient address. Order: the account at the exact address, then at the address
    /// without its `+tag`; the alias at the exact address, then without its tag (alias targets are
    /// resolved in turn, up to [`MAX_ALIAS_DEPTH`] deep, each address at most once so loops end);
    /// then the domain's catch-all. An address in a domain that is not ours is `Err(NotLocal)`.
    pub async fn resolve(&self, address: &str) -> Result<Resolution, DirectoryError> {
        let top = Address::parse(address)?;
        let mut domains: HashMap<String, Option<DomainRecord>> = HashMap::new();
        if self
            .cached_domain(&mut domains, top.domain())
            .await?
            .is_none()
        {
            return Err(DirectoryError::NotLocal(top.domain().to_string()));
        }

        let mut out = Resolution::default();
        let mut seen: HashSet<String> = HashSet::new();
        // Depth-first with an explicit stack (targets pushed in reverse to keep their order).
        let mut stack: Vec<(String, usize)> = vec![(top.to_string(), 0)];
        while let Some((target, depth)) = stack.pop() {
            if depth > MAX_ALIAS_DEPTH {
                tracing::warn!(address = %top, "alias expansion deeper than {MAX_ALIAS_DEPTH}");
                return Err(DirectoryError::AliasTooDeep(top.to_string()));
            }
            let (raw_local, domain) = match address::parse_preserving_case(&target) {
                Ok(parts) => parts,
                Err(e) => {
                    // Stored targets were validated when written; skip one damaged entry.
                    tracing::warn!(address = %top, target = %target, error = %e, "invalid alias target skipped");
                    continue;
                }
            };
            let Some(dom) = self.cached_domain(&mut domains, &domain).await? else {
                let external = format!("{raw_local}@{domain}");
                if seen.insert(external.clone()) {
                    out.external.push(external);
                }
                continue;
            };
            let addr = Address::parse(&target)?;
            if !seen.insert(addr.to_string()) {
                continue;
            }
            let local = addr.local_part();
            let (base, tag) = addr.split_plus();
            let candidates: &[&str] = if tag.is_some() {
                &[local, base]
            } else {
                &[local]
            };

            let mut found = false;
            for candidate in candidates {
                if let Some(account) = self.store.account_get(candidate, &domain).await? {
                    if !out.local.iter().any(|a| a.id == account.id) {
                        out.local.push(account);
                    }
                    found = true;
                    break;
                }
                if let Some(alias) = self.store.alias_get(candidate, &domain).await? {
                    stack.extend(alias.targets.into_iter().rev().map(|t| (t, depth + 1)));
                    found = true;
                    break;
                }
            }
            if !found && let Some(catchall) = dom.catchall {
                stack.push((catchall, depth + 1));
            }
        }
        Ok(out)
    }

    async fn cached_domain(
        &self,
        cache: &mut HashMap<String, Option<DomainRecord>>,
        name: &str,
    ) -> Result<Option<DomainRecord>, DirectoryError> {
        if let Some(d) = cache.get(name) {
            return Ok(d.clone());
        }
        let d = self.store.domain_get(name).await?;
        cache.insert(name.to_string(), d.clone());
        Ok(d)
    }
}
