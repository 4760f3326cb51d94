//! Errors of the PKCS#11 QSCD: an operation's error (`OpError`), which cryptoki errors are
//! worth another try on a fresh session (`is_session_level`) or another look at start-up
//! (`is_transient`), and how the rest map to `QscdError` (`map_ck`).

use cryptoki::error::{Error as CkError, RvError};

use super::super::QscdError;

/// An operation's error: cryptoki's, or ours.
pub(super) enum OpError {
    Ck(CkError),
    Q(QscdError),
}

impl From<CkError> for OpError {
    fn from(e: CkError) -> Self {
        OpError::Ck(e)
    }
}

impl From<QscdError> for OpError {
    fn from(e: QscdError) -> Self {
        OpError::Q(e)
    }
}

pub(super) fn rv(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// Errors after which the operation is worth another try on a fresh or re-logged-in session
/// (network HSMs report a lost link as a device error or a removed token). Not
/// CKR_GENERAL_ERROR: SoftHSM2 answers a failed GCM tag check with it.
pub(super) fn is_session_level(e: &CkError) -> bool {
    matches!(
        rv(e),
        Some(
            RvError::UserNotLoggedIn
                | RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
        )
    )
}

pub(super) fn map_ck(e: CkError) -> QscdError {
    match rv(&e) {
        Some(
            RvError::DataLenRange
            | RvError::ArgumentsBad
            | RvError::DataInvalid
            | RvError::MechanismParamInvalid
            | RvError::MechanismInvalid
            | RvError::KeyTypeInconsistent
            | RvError::KeyFunctionNotPermitted,
        ) => QscdError::BadInput(e.to_string()),
        _ => QscdError::Device(e.to_string()),
    }
}

/// Errors at start-up that mean "not there yet" rather than "wrong": the token is missing,
/// unreadable for a moment, or the device is not answering: the session-level errors, and the
/// general and slot errors SoftHSM2 gives while another process writes its files. Never a PIN
/// error (a retried wrong PIN would use up the token's tries).
pub(super) fn is_transient(e: &CkError) -> bool {
    is_session_level(e)
        || matches!(
            rv(e),
            Some(
                RvError::GeneralError
                    | RvError::TokenNotRecognized
                    | RvError::SlotIdInvalid
                    | RvError::CryptokiNotInitialized
            )
        )
}
