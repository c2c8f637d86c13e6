//! Why a response was refused. `code()` is the stable reason of API.md; the
//! detail is the sentence a person reads to fix the problem.

use std::fmt;

/// The API.md reason codes, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    TooLarge,
    Malformed,
    DtdForbidden,
    UnknownIssuer,
    IdpDisabled,
    StatusNotSuccess,
    Unsigned,
    SignatureInvalid,
    AlgorithmForbidden,
    ReferenceInvalid,
    MultipleAssertions,
    DestinationMismatch,
    AudienceMismatch,
    RecipientMismatch,
    NotYetValid,
    Expired,
    InResponseToMismatch,
    Unsolicited,
    Replay,
    SubjectMissing,
    RequiredAttributeMissing,
    ProvisioningDisabled,
    UserDisabled,
    EncryptedUnsupported,
    EmailDomainNotAllowed,
    NotEntitled,
    ProvisioningRefused,
}

impl Reason {
    pub const ALL: [Reason; 27] = [
        Reason::TooLarge,
        Reason::Malformed,
        Reason::DtdForbidden,
        Reason::UnknownIssuer,
        Reason::IdpDisabled,
        Reason::StatusNotSuccess,
        Reason::Unsigned,
        Reason::SignatureInvalid,
        Reason::AlgorithmForbidden,
        Reason::ReferenceInvalid,
        Reason::MultipleAssertions,
        Reason::DestinationMismatch,
        Reason::AudienceMismatch,
        Reason::RecipientMismatch,
        Reason::NotYetValid,
        Reason::Expired,
        Reason::InResponseToMismatch,
        Reason::Unsolicited,
        Reason::Replay,
        Reason::SubjectMissing,
        Reason::RequiredAttributeMissing,
        Reason::ProvisioningDisabled,
        Reason::UserDisabled,
        Reason::EncryptedUnsupported,
        Reason::EmailDomainNotAllowed,
        Reason::NotEntitled,
        Reason::ProvisioningRefused,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::Malformed => "malformed",
            Reason::DtdForbidden => "dtd_forbidden",
            Reason::UnknownIssuer => "unknown_issuer",
            Reason::IdpDisabled => "idp_disabled",
            Reason::StatusNotSuccess => "status_not_success",
            Reason::Unsigned => "unsigned",
            Reason::SignatureInvalid => "signature_invalid",
            Reason::AlgorithmForbidden => "algorithm_forbidden",
            Reason::ReferenceInvalid => "reference_invalid",
            Reason::MultipleAssertions => "multiple_assertions",
            Reason::DestinationMismatch => "destination_mismatch",
            Reason::AudienceMismatch => "audience_mismatch",
            Reason::RecipientMismatch => "recipient_mismatch",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Expired => "expired",
            Reason::InResponseToMismatch => "in_response_to_mismatch",
            Reason::Unsolicited => "unsolicited",
            Reason::Replay => "replay",
            Reason::SubjectMissing => "subject_missing",
            Reason::RequiredAttributeMissing => "required_attribute_missing",
            Reason::ProvisioningDisabled => "provisioning_disabled",
            Reason::UserDisabled => "user_disabled",
            Reason::EncryptedUnsupported => "encrypted_unsupported",
            Reason::EmailDomainNotAllowed => "email_domain_not_allowed",
            Reason::NotEntitled => "not_entitled",
            Reason::ProvisioningRefused => "provisioning_refused",
        }
    }
}

/// A rejected response: the reason code and what a person can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: Reason,
    pub detail: String,
}

impl Reject {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Reject {
            reason,
            detail: detail.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        self.reason.code()
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SAML response rejected: {}", self.code())
    }
}

impl std::error::Error for Reject {}

/// Shorthand used by every check: `return Err(reject(Reason::X, "..."))`.
pub fn reject(reason: Reason, detail: impl Into<String>) -> Reject {
    Reject::new(reason, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_the_api_md_list_and_unique() {
        let codes: HashSet<_> = Reason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Reason::ALL.len());
        let api = "too_large malformed dtd_forbidden unknown_issuer idp_disabled \
                   status_not_success unsigned signature_invalid algorithm_forbidden \
                   reference_invalid multiple_assertions destination_mismatch \
                   audience_mismatch recipient_mismatch not_yet_valid expired \
                   in_response_to_mismatch unsolicited replay subject_missing \
                   required_attribute_missing provisioning_disabled user_disabled \
                   encrypted_unsupported \
                   provisioning_refused email_domain_not_allowed not_entitled";
        let expected: HashSet<_> = api.split_whitespace().collect();
        assert_eq!(codes, expected);
    }

    #[test]
    fn message_has_the_contract_prefix() {
        let r = reject(Reason::Replay, "assertion _a1 was already used");
        assert_eq!(r.to_string(), "SAML response rejected: replay");
    }
}
