/*
 * A fault-injecting PKCS#11 module for Quill's token-fault tests (tests/api/token_faults.rs).
 *
 * It loads the real module named by QUILL_FAULT_REAL_MODULE (SoftHSM2 in the tests), hands out
 * the real module's function list with a few entries wrapped, and consults the control file
 * QUILL_FAULT_CONTROL on every wrapped call:
 *
 *   (missing or empty)  pass everything through;
 *   device-error        wrapped calls fail with CKR_DEVICE_ERROR (a broken or unplugged HSM)
 *                       until the file changes;
 *   close-sessions      the next wrapped call that names a session first makes the real module
 *                       close every session of this process on that slot (C_CloseAllSessions,
 *                       which also logs the process out: a real session loss), empties the
 *                       control file, then goes on with the real call.
 *
 * Every wrapped call is appended to QUILL_FAULT_LOG (one line: the function and its CK_RV) so a
 * test can see sessions being re-opened and the token logged in again. Nothing is simulated
 * beyond the failure itself: keys, sessions and signatures are SoftHSM2's.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST real;
static CK_FUNCTION_LIST wrapped;
static int loaded;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

enum mode { PASS, DEVICE_ERROR, CLOSE_SESSIONS };

static enum mode current_mode(void)
{
    const char *path = getenv("QUILL_FAULT_CONTROL");
    char buf[64] = {0};
    FILE *f;
    if (!path || !(f = fopen(path, "r")))
        return PASS;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    if (!strncmp(buf, "device-error", 12))
        return DEVICE_ERROR;
    if (!strncmp(buf, "close-sessions", 14))
        return CLOSE_SESSIONS;
    return PASS;
}

static void note(const char *what, CK_RV rv)
{
    const char *path = getenv("QUILL_FAULT_LOG");
    FILE *f;
    if (!path)
        return;
    pthread_mutex_lock(&lock);
    if ((f = fopen(path, "a"))) {
        fprintf(f, "%s rv=0x%lx\n", what, (unsigned long)rv);
        fclose(f);
    }
    pthread_mutex_unlock(&lock);
}

/* Apply the control file before a call on `session` (CK_INVALID_HANDLE: no session yet).
 * Returns CKR_OK to go on with the real call, or the error to return instead. */
static CK_RV before(CK_SESSION_HANDLE session)
{
    switch (current_mode()) {
    case DEVICE_ERROR:
        return CKR_DEVICE_ERROR;
    case CLOSE_SESSIONS:
        if (session != CK_INVALID_HANDLE) {
            CK_SESSION_INFO info;
            pthread_mutex_lock(&lock);
            /* Only one caller acts on a given request: re-check under the lock. */
            if (current_mode() == CLOSE_SESSIONS &&
                real.C_GetSessionInfo(session, &info) == CKR_OK) {
                CK_RV rv = real.C_CloseAllSessions(info.slotID);
                FILE *f = fopen(getenv("QUILL_FAULT_CONTROL"), "w");
                if (f)
                    fclose(f);
                pthread_mutex_unlock(&lock);
                note("fault:C_CloseAllSessions", rv);
            } else {
                pthread_mutex_unlock(&lock);
            }
        }
        return CKR_OK;
    default:
        return CKR_OK;
    }
}

#define WRAP_SESSION(name, params, args)                                                    \
    static CK_RV w_##name params                                                            \
    {                                                                                       \
        CK_RV rv = before(session);                                                         \
        if (rv == CKR_OK)                                                                   \
            rv = real.name args;                                                            \
        note(#name, rv);                                                                    \
        return rv;                                                                          \
    }

static CK_RV w_C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, void *app, CK_NOTIFY notify,
                             CK_SESSION_HANDLE_PTR out)
{
    CK_RV rv = current_mode() == DEVICE_ERROR ? CKR_DEVICE_ERROR
                                              : real.C_OpenSession(slot, flags, app, notify, out);
    note("C_OpenSession", rv);
    return rv;
}

WRAP_SESSION(C_Login,
             (CK_SESSION_HANDLE session, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len),
             (session, user, pin, len))
WRAP_SESSION(C_GetSessionInfo, (CK_SESSION_HANDLE session, CK_SESSION_INFO_PTR info),
             (session, info))
WRAP_SESSION(C_FindObjectsInit,
             (CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count),
             (session, tmpl, count))
WRAP_SESSION(C_SignInit,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key),
             (session, mech, key))
WRAP_SESSION(C_Sign,
             (CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
              CK_ULONG_PTR sig_len),
             (session, data, len, sig, sig_len))
WRAP_SESSION(C_EncryptInit,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key),
             (session, mech, key))
WRAP_SESSION(C_DecryptInit,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key),
             (session, mech, key))

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
    if (!out)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&lock);
    if (!loaded) {
        const char *path = getenv("QUILL_FAULT_REAL_MODULE");
        void *module = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        CK_C_GetFunctionList get =
            module ? (CK_C_GetFunctionList)dlsym(module, "C_GetFunctionList") : NULL;
        CK_FUNCTION_LIST_PTR list = NULL;
        if (!get || get(&list) != CKR_OK || !list) {
            pthread_mutex_unlock(&lock);
            return CKR_GENERAL_ERROR;
        }
        real = *list;
        wrapped = real;
        wrapped.C_OpenSession = w_C_OpenSession;
        wrapped.C_Login = w_C_Login;
        wrapped.C_GetSessionInfo = w_C_GetSessionInfo;
        wrapped.C_FindObjectsInit = w_C_FindObjectsInit;
        wrapped.C_SignInit = w_C_SignInit;
        wrapped.C_Sign = w_C_Sign;
        wrapped.C_EncryptInit = w_C_EncryptInit;
        wrapped.C_DecryptInit = w_C_DecryptInit;
        loaded = 1;
    }
    pthread_mutex_unlock(&lock);
    *out = &wrapped;
    return CKR_OK;
}
