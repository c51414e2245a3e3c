//! `wasi:http/types.fields`: validated, size-limited header and trailer maps.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::bindings::http::types::HeaderError;
use crate::ctx::WasiHttpHooks;
use crate::limits::Limits;

/// The host side of a `fields` resource.
#[derive(Debug, Clone, Default)]
pub struct HostFields {
    map: HeaderMap,
    mutable: bool,
    /// Sum of name and value lengths, kept so limit checks are O(1).
    bytes: usize,
}

/// Why a header map could not become `fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldsError {
    /// More entries than [`Limits::max_field_count`].
    TooMany,
    /// More bytes than [`Limits::max_field_bytes`].
    TooLarge,
}

impl std::fmt::Display for FieldsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldsError::TooMany => f.write_str("too many header fields"),
            FieldsError::TooLarge => f.write_str("header fields too large"),
        }
    }
}

impl std::error::Error for FieldsError {}

fn entry_size(name: &HeaderName, value: &HeaderValue) -> usize {
    name.as_str().len() + value.len()
}

impl HostFields {
    /// Empty, mutable fields (the guest's `constructor`).
    pub fn new_mutable() -> Self {
        HostFields {
            map: HeaderMap::new(),
            mutable: true,
            bytes: 0,
        }
    }

    /// Immutable fields over a map received from the network, checked against limits.
    pub fn from_received(map: HeaderMap, limits: &Limits) -> Result<Self, FieldsError> {
        if map.len() > limits.max_field_count {
            return Err(FieldsError::TooMany);
        }
        let bytes = map.iter().map(|(n, v)| entry_size(n, v)).sum();
        if bytes > limits.max_field_bytes {
            return Err(FieldsError::TooLarge);
        }
        Ok(HostFields {
            map,
            mutable: false,
            bytes,
        })
    }

    /// The guest's `from-list`: validated entries, mutable result.
    pub(crate) fn from_list(
        entries: Vec<(String, Vec<u8>)>,
        limits: &Limits,
        hooks: &dyn WasiHttpHooks,
    ) -> Result<Self, HeaderError> {
        let mut fields = HostFields {
            // Sized for what the limits admit: the guest chooses the list's length,
            // and `HeaderMap::with_capacity` panics past 32,768.
            map: HeaderMap::try_with_capacity(entries.len().min(limits.max_field_count))
                .unwrap_or_default(),
            ..HostFields::new_mutable()
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
    pub(crate) fn immutable_copy(&self) -> Self {
        HostFields {
            map: self.map.clone(),
            mutable: false,
            bytes: self.bytes,
        }
    }

    /// A mutable copy (the guest's `clone`).
    pub(crate) fn mutable_copy(&self) -> Self {
        HostFields {
            map: self.map.clone(),
            mutable: true,
            bytes: self.bytes,
        }
    }

    pub(crate) fn get(&self, name: &str) -> Vec<Vec<u8>> {
        // An invalid name cannot be present: the WIT says `get` returns an empty list.
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

    pub(crate) fn has(&self, name: &str) -> bool {
        HeaderName::from_bytes(name.as_bytes()).is_ok_and(|name| self.map.contains_key(&name))
    }

    pub(crate) fn set(
        &mut self,
        name: &str,
        values: Vec<Vec<u8>>,
        limits: &Limits,
        hooks: &dyn WasiHttpHooks,
    ) -> Result<(), HeaderError> {
        self.check_mutable()?;
        let name = validate_name(name, hooks)?;
        let values = values
            .into_iter()
            .map(validate_value)
            .collect::<Result<Vec<_>, _>>()?;
        // Check the limits against the result before changing anything.
        let removed = self.bytes_of(&name);
        let removed_count = self.map.get_all(&name).iter().count();
        let added: usize = values.iter().map(|v| entry_size(&name, v)).sum();
        let bytes = self.bytes - removed + added;
        let count = self.map.len() - removed_count + values.len();
        if bytes > limits.max_field_bytes || count > limits.max_field_count {
            return Err(HeaderError::Forbidden);
        }
        self.map.remove(&name);
        for value in values {
            // Only a new name can meet `HeaderMap`'s maximum, and then at the first
            // value, before anything changed.
            self.map
                .try_append(name.clone(), value)
                .map_err(|_| HeaderError::Forbidden)?;
        }
        self.bytes = bytes;
        Ok(())
    }

    pub(crate) fn delete(
        &mut self,
        name: &str,
        hooks: &dyn WasiHttpHooks,
    ) -> Result<(), HeaderError> {
        self.check_mutable()?;
        let name = validate_name(name, hooks)?;
        self.bytes -= self.bytes_of(&name);
        self.map.remove(&name);
        Ok(())
    }

    pub(crate) fn append(
        &mut self,
        name: &str,
        value: Vec<u8>,
        limits: &Limits,
        hooks: &dyn WasiHttpHooks,
    ) -> Result<(), HeaderError> {
        self.check_mutable()?;
        let (name, value) = validate(name, value, hooks)?;
        self.push(name, value, limits)
    }

    pub(crate) fn entries(&self) -> Vec<(String, Vec<u8>)> {
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
    ) -> Result<(), HeaderError> {
        let size = entry_size(&name, &value);
        if self.bytes + size > limits.max_field_bytes || self.map.len() >= limits.max_field_count {
            return Err(HeaderError::Forbidden);
        }
        // `HeaderMap` holds at most 32,768 names; limits set above that meet it here.
        self.map
            .try_append(name, value)
            .map_err(|_| HeaderError::Forbidden)?;
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

    fn check_mutable(&self) -> Result<(), HeaderError> {
        if self.mutable {
            Ok(())
        } else {
            Err(HeaderError::Immutable)
        }
    }
}

fn validate_name(name: &str, hooks: &dyn WasiHttpHooks) -> Result<HeaderName, HeaderError> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| HeaderError::InvalidSyntax)?;
    if hooks.is_forbidden_header(&name) {
        return Err(HeaderError::Forbidden);
    }
    Ok(name)
}

fn validate(
    name: &str,
    value: Vec<u8>,
    hooks: &dyn WasiHttpHooks,
) -> Result<(HeaderName, HeaderValue), HeaderError> {
    let name = validate_name(name, hooks)?;
    Ok((name, validate_value(value)?))
}

/// The value as the guest gave it: its bytes are kept, not copied.
fn validate_value(value: Vec<u8>) -> Result<HeaderValue, HeaderError> {
    HeaderValue::from_maybe_shared(Bytes::from(value)).map_err(|_| HeaderError::InvalidSyntax)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest's list longer than a header map can hold is refused, not a panic.
    #[test]
    fn a_huge_field_list_is_an_error() {
        let entries = vec![("x-a".to_owned(), b"1".to_vec()); 40_000];
        let hooks = crate::ctx::DefaultHooks::default();
        let result = HostFields::from_list(entries, &Limits::default(), &hooks);
        assert!(matches!(result, Err(HeaderError::Forbidden)));
        let generous = Limits {
            max_field_count: usize::MAX,
            max_field_bytes: usize::MAX,
            ..Limits::default()
        };
        let entries = (0..40_000)
            .map(|i| (format!("x-{i}"), b"1".to_vec()))
            .collect();
        // Past the map's own maximum: an error, whatever the limits say.
        assert!(HostFields::from_list(entries, &generous, &hooks).is_err());
    }
}
