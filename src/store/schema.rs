//! Diesel table definitions matching `migrations/sqlite`; the repository tests insert and read
//! every column of every table, so a drift between the two fails `cargo test`.

diesel::table! {
    users (id) {
        id -> Text,
        name -> Text,
        password_hash -> Text,
        failed_logins -> Integer,
        created_at -> BigInt,
        last_login_failure -> Nullable<BigInt>,
    }
}

diesel::table! {
    credentials (id) {
        id -> Text,
        user_id -> Text,
        key_id -> Binary,
        key_type -> Text,
        key_bits -> Integer,
        cert_chain -> Binary,
        not_before -> BigInt,
        not_after -> BigInt,
        pin_hash -> Text,
        otp_kind -> Text,
        otp_secret -> Nullable<Binary>,
        status -> Text,
        multisign -> Integer,
        description -> Nullable<Text>,
        failed_auths -> Integer,
        last_otp_step -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    access_tokens (token_hash) {
        token_hash -> Binary,
        user_id -> Text,
        expires_at -> BigInt,
        revoked -> Bool,
        created_at -> BigInt,
        scope -> Text,
    }
}

diesel::table! {
    sads (sad_hash) {
        sad_hash -> Binary,
        token_hash -> Binary,
        user_id -> Text,
        credential_id -> Text,
        hash_algo -> Text,
        remaining -> Integer,
        expires_at -> BigInt,
        created_at -> BigInt,
        used -> Binary,
    }
}

diesel::table! {
    sad_digests (sad_hash) {
        sad_hash -> Binary,
        digests -> Binary,
    }
}

diesel::table! {
    otp_challenges (credential_id) {
        credential_id -> Text,
        code_sealed -> Binary,
        expires_at -> BigInt,
        tries_left -> Integer,
    }
}

diesel::joinable!(credentials -> users (user_id));
diesel::joinable!(access_tokens -> users (user_id));
diesel::joinable!(sads -> credentials (credential_id));
diesel::joinable!(sad_digests -> sads (sad_hash));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    credentials,
    access_tokens,
    sads,
    sad_digests,
    audit_log,
    otp_challenges
);

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        at -> BigInt,
        actor -> Text,
        action -> Text,
        credential_id -> Nullable<Text>,
        outcome -> Text,
        detail -> Text,
        prev_hash -> Binary,
        hash -> Binary,
    }
}

diesel::table! {
    oauth_clients (client_id) {
        client_id -> Text,
        secret_hash -> Nullable<Binary>,
        name -> Text,
        redirect_uris -> Text,
        service_user_id -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    oauth_requests (handle_hash) {
        handle_hash -> Binary,
        client_id -> Text,
        params -> Text,
        csrf_hash -> Nullable<Binary>,
        pushed -> Bool,
        expires_at -> BigInt,
        created_at -> BigInt,
        signer_id -> Nullable<Text>,
    }
}

diesel::table! {
    oauth_codes (code_hash) {
        code_hash -> Binary,
        client_id -> Text,
        user_id -> Text,
        params -> Text,
        used -> Bool,
        token_hash -> Nullable<Binary>,
        expires_at -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    oauth_refresh_tokens (token_hash) {
        token_hash -> Binary,
        client_id -> Text,
        user_id -> Text,
        access_token_hash -> Binary,
        revoked -> Bool,
        expires_at -> BigInt,
        created_at -> BigInt,
        grant_hash -> Nullable<Binary>,
    }
}

diesel::table! {
    sign_jobs (id_hash) {
        id_hash -> Binary,
        user_id -> Text,
        credential_token_hash -> Nullable<Binary>,
        status -> Nullable<Integer>,
        result -> Nullable<Text>,
        expires_at -> BigInt,
        created_at -> BigInt,
        sealed_result -> Nullable<Binary>,
    }
}
