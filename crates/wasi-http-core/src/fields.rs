//! `fields`: validated, size-limited header and trailer maps, mutable or not.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::hooks::WasiHttpHooks;
use crate::limits::Limits;

/// The host side of a `fields` resource (headers or trailers).
///
/// Guests get fields from the `fields` constructors (mutable) or from a message's
/// accessors (immutable copies); the host makes them from what it received
/// ([`Fields::from_received`], checked against the [`Limits`] only).
#[derive(Debug, Clone, Default)]
pub struct Fields {
    map: HeaderMap,
    mutable: bool,
    /// Sum of name and value lengths, kept so limit checks are O(1).
    bytes: usize,
}

/// Why a `fields` operation failed (`header-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldError {
    /// A name or value is not valid HTTP syntax.
    InvalidSyntax,
    /// The name is one the host manages itself (or the hooks forbid).
    Forbidden,
    /// The fields are immutable.
    Immutable,
    /// The result would exceed [`Limits::max_field_bytes`] or
    /// [`Limits::max_field_count`]. (WASI 0.2 has no such case; it reports `forbidden`.)
    SizeExceeded,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FieldError::InvalidSyntax => "invalid header syntax",
            FieldError::Forbidden => "forbidden header",
            FieldError::Immutable => "immutable fields",
            FieldError::SizeExceeded => "header fields too large",
        })
    }
}

impl std::error::Error for FieldError {}

fn entry_size(name: &HeaderName, value: &HeaderValue) -> usize {
    name.as_str().len() + value.len()
}

impl Fields {
    /// Empty, mutable fields (the guest's constructor).
    pub fn new_mutable() -> Self {
        Fields {
            map: HeaderMap::new(),
            mutable: true,
            bytes: 0,
        }
    }

    /// Immutable fields over a map received from the network, checked against the
    /// limits (`SizeExceeded` past either).
    pub fn from_received(map: HeaderMap, limits: &Limits) -> Result<Self, FieldError> {
        if map.len() > limits.max_field_count {
            return Err(FieldError::SizeExceeded);
        }
        let bytes = map.iter().map(|(n, v)| entry_size(n, v)).sum();
        if bytes > limits.max_field_bytes {
            return Err(FieldError::SizeExceeded);
        }
        Ok(Fields {
            map,
            mutable: false,
            bytes,
        })
    }

    /// The guest's `from-list`: validated entries, mutable result.
    pub fn from_list(
        entries: Vec<(String, Vec<u8>)>,
        limits: &Limits,
        hooks: &dyn WasiHttpHooks,
    ) -> Result<Self, FieldError> {
        let mut fields = Fields {
            // Sized for what the limits admit: the guest chooses the list's length,
            // and `HeaderMap::with_capacity` panics past 32,768.
            map: HeaderMap::try_with_capacity(entries.len().min(limits.max_field_count))
                .unwrap_or_default(),
            ..Fields::new_mutable()
        };
        for (name, value) in entries {
            let (name, value) = validate(&name, value, hooks)?;
            fields.push(name, value, limits)?;
        }
        Ok(fields)
    }

    /// Whether the guest may modify these fields.
    pub fn is_mutable(&self) -> bool {
        self.mutable
    }

    /// The header map.
    pub fn map(&self) -> &HeaderMap {
        &self.map
    }

    /// Takes the header map out, e.g. to build an `http` message.
    pub fn into_map(self) -> HeaderMap {
        self.map
    }

    /// An immutable copy (for `headers()` accessors: the WIT says those are immutable).
    pub fn immutable_copy(&self) -> Self {
        Fields {
            map: self.map.clone(),
            mutable: false,
            bytes: self.bytes,
        }
    }

    /// A mutable copy (the guest's `clone`).
    pub fn mutable_copy(&self) -> Self {
        Fields {
            map: self.map.clone(),
            mutable: true,
            bytes: self.bytes,
        }
    }

    /// Every value of `name`; none for a name that is not valid syntax (it cannot be
    /// present).
    pub fn get(&self, name: &str) -> Vec<Vec<u8>> {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) => self
                .map
                .get_all(&name)
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        HeaderName::from_bytes(name.as_bytes()).is_ok_and(|name| self.map.contains_key(&name))
    }

    /// Replaces every value of `name`; the limits are checked against the result
    /// before anything changes.
    pub fn set(
        &mut self,
        name: &str,
        values: Vec<Vec<u8>>,
        limits: &Limits,
        hooks: &dyn WasiHttpHooks,
    ) -> Result<(), FieldError> {
        self.check_mutable()?;
        let name = validate_name(name, hooks)?;
        let values = values
            .into_iter()
            .map(validate_value)
            .collect::<Result<Vec<_>, _>>()?;
        let removed = self.bytes_of(&name);
        let removed_count = self.map.get_all(&name).iter().count();
        let added: usize = values.iter().map(|v| entry_size(&name, v)).sum();
        let bytes = self.bytes - removed + added;
        let count = self.map.len() - removed_count + values.len();
        if bytes > limits.max_field_bytes || count > limits.max_field_count {
            return Err(FieldError::SizeExceeded);
        }
        self.map.remove(&name);
        for value in values {
            // Only a new name can meet `HeaderMap`'s maximum, and then at the first
            // value, before anything changed.
            self.map
                .try_append(name.clone(), value)
                .map_err(|_| FieldError::SizeExceeded)?;
        }
        self.bytes = bytes;
        Ok(())
    }

    /// Removes every value of `name`, returning them (`get-and-delete`).
    pub fn delete(
        &mut self,
        name: &str,
        hooks: &dyn WasiHttpHooks,
    ) -> Result<Vec<Vec<u8>>, FieldError> {
        self.check_mutable()?;
        let name = validate_name(name, hooks)?;
        self.bytes -= self.bytes_of(&name);
        let removed = match self.map.entry(&name) {
            http::header::Entry::Occupied(entry) => entry
                .remove_entry_mult()
                .1
                .map(|v| v.as_bytes().to_vec())
                .collect(),
            http::header::Entry::Vacant(_) => Vec::new(),
        };
        Ok(removed)
    }

    /// Adds a value to `name`.
    pub fn append(
        &mut self,
        name: &str,
        value: Vec<u8>,
        limits: &Limits,
        hooks: &dyn WasiHttpHooks,
    ) -> Result<(), FieldError> {
        self.check_mutable()?;
        let (name, value) = validate(name, value, hooks)?;
        self.push(name, value, limits)
    }

    /// Every entry, in order (`entries` / `copy-all`).
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        self.map
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn push(
        &mut self,
        name: HeaderName,
        value: HeaderValue,
        limits: &Limits,
    ) -> Result<(), FieldError> {
        let size = entry_size(&name, &value);
        if self.bytes + size > limits.max_field_bytes || self.map.len() >= limits.max_field_count {
            return Err(FieldError::SizeExceeded);
        }
        // `HeaderMap` holds at most 32,768 names; limits set above that meet it here.
        self.map
            .try_append(name, value)
            .map_err(|_| FieldError::SizeExceeded)?;
        self.bytes += size;
        Ok(())
    }

    /// Bytes held by all entries named `name`.
    fn bytes_of(&self, name: &HeaderName) -> usize {
        self.map
            .get_all(name)
            .iter()
            .map(|v| entry_size(name, v))
            .sum()
    }

    fn check_mutable(&self) -> Result<(), FieldError> {
        if self.mutable {
            Ok(())
        } else {
            Err(FieldError::Immutable)
        }
    }
}

fn validate_name(name: &str, hooks: &dyn WasiHttpHooks) -> Result<HeaderName, FieldError> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| FieldError::InvalidSyntax)?;
    if hooks.is_forbidden_header(&name) {
        return Err(FieldError::Forbidden);
    }
    Ok(name)
}

fn validate(
    name: &str,
    value: Vec<u8>,
    hooks: &dyn WasiHttpHooks,
) -> Result<(HeaderName, HeaderValue), FieldError> {
    let name = validate_name(name, hooks)?;
    Ok((name, validate_value(value)?))
}

/// The value as the guest gave it: its bytes are kept, not copied.
fn validate_value(value: Vec<u8>) -> Result<HeaderValue, FieldError> {
    HeaderValue::from_maybe_shared(Bytes::from(value)).map_err(|_| FieldError::InvalidSyntax)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::NoOutbound;

    /// A guest's list longer than a header map can hold is refused, not a panic.
    #[test]
    fn a_huge_field_list_is_an_error() {
        let entries = vec![("x-a".to_owned(), b"1".to_vec()); 40_000];
        let result = Fields::from_list(entries, &Limits::default(), &NoOutbound);
        assert!(matches!(result, Err(FieldError::SizeExceeded)));
        let generous = Limits {
            max_field_count: usize::MAX,
            max_field_bytes: usize::MAX,
            ..Limits::default()
        };
        let entries = (0..40_000)
            .map(|i| (format!("x-{i}"), b"1".to_vec()))
            .collect();
        // Past the map's own maximum: an error, whatever the limits say.
        assert!(Fields::from_list(entries, &generous, &NoOutbound).is_err());
    }

    #[test]
    fn delete_returns_the_values_and_frees_their_budget() {
        let limits = Limits::default();
        let mut f = Fields::new_mutable();
        f.append("x-a", b"1".to_vec(), &limits, &NoOutbound)
            .unwrap();
        f.append("x-a", b"22".to_vec(), &limits, &NoOutbound)
            .unwrap();
        f.append("x-b", b"3".to_vec(), &limits, &NoOutbound)
            .unwrap();
        let removed = f.delete("X-A", &NoOutbound).unwrap();
        assert_eq!(removed, vec![b"1".to_vec(), b"22".to_vec()]);
        assert_eq!(f.bytes, "x-b".len() + 1);
        assert!(f.delete("x-none", &NoOutbound).unwrap().is_empty());
        assert_eq!(
            f.delete("bad name", &NoOutbound),
            Err(FieldError::InvalidSyntax)
        );
        assert_eq!(
            f.delete("connection", &NoOutbound),
            Err(FieldError::Forbidden)
        );
        let frozen = f.immutable_copy();
        let mut frozen = frozen;
        assert_eq!(
            frozen.delete("x-b", &NoOutbound),
            Err(FieldError::Immutable)
        );
    }
}
