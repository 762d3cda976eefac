/*
 * CCurl: the system libcurl with typed wrappers for its variadic setters and
 * getters (one per argument type), and a byte-buffer write callback so Swift
 * never hands libcurl a closure. No logic lives here.
 */
#ifndef CCURL_H
#define CCURL_H

#include <curl/curl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline CURLcode ccurl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLMcode ccurl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}
static inline CURLcode ccurl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode ccurl_getinfo_double(CURL *handle, CURLINFO info, double *value) {
    return curl_easy_getinfo(handle, info, value);
}
/* A CURLMsg's fields (the union is awkward from Swift, and Swift then never dereferences it). */
static inline int ccurl_message_is_done(const CURLMsg *message) { return message->msg == CURLMSG_DONE; }
static inline CURL *ccurl_message_handle(const CURLMsg *message) { return message->easy_handle; }
static inline CURLcode ccurl_message_result(const CURLMsg *message) { return message->data.result; }

/* A request body, copied by libcurl during the call. */
static inline CURLcode ccurl_set_body(CURL *handle, const uint8_t *bytes, size_t length) {
    CURLcode code = curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)length);
    return code != CURLE_OK ? code : curl_easy_setopt(handle, CURLOPT_COPYPOSTFIELDS, (const char *)bytes);
}

/* A growable byte buffer that libcurl appends a response body or header block to. */
typedef struct {
    char *data;
    size_t length;
    size_t capacity;
    size_t limit; /* 0: no limit; beyond it the transfer is aborted */
    int overflowed; /* 1 once the limit aborted the transfer */
} ccurl_buffer;

static inline size_t ccurl_buffer_append(char *bytes, size_t size, size_t count, void *user) {
    ccurl_buffer *buffer = (ccurl_buffer *)user;
    size_t n = size * count;
    if (buffer->limit && buffer->length + n > buffer->limit) { buffer->overflowed = 1; return 0; }
    if (buffer->length + n > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity * 2 : 4096;
        while (capacity < buffer->length + n) capacity *= 2;
        char *grown = (char *)realloc(buffer->data, capacity);
        if (!grown) return 0;
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->length, bytes, n);
    buffer->length += n;
    return n;
}

static inline CURLcode ccurl_collect_body(CURL *handle, ccurl_buffer *buffer) {
    CURLcode code = curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, ccurl_buffer_append);
    return code != CURLE_OK ? code : curl_easy_setopt(handle, CURLOPT_WRITEDATA, buffer);
}
static inline CURLcode ccurl_collect_headers(CURL *handle, ccurl_buffer *buffer) {
    CURLcode code = curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, ccurl_buffer_append);
    return code != CURLE_OK ? code : curl_easy_setopt(handle, CURLOPT_HEADERDATA, buffer);
}
/* A new empty buffer that refuses to grow past `limit` bytes (0: no limit); NULL when out of memory. */
static inline ccurl_buffer *ccurl_buffer_new(size_t limit) {
    ccurl_buffer *buffer = (ccurl_buffer *)calloc(1, sizeof *buffer);
    if (buffer) buffer->limit = limit;
    return buffer;
}
static inline void ccurl_buffer_free(ccurl_buffer *buffer) {
    if (!buffer) return;
    free(buffer->data);
    free(buffer);
}
static inline size_t ccurl_buffer_length(const ccurl_buffer *buffer) { return buffer->length; }
static inline int ccurl_buffer_overflowed(const ccurl_buffer *buffer) { return buffer->overflowed; }
/* Empties the buffer (a streamed body is taken a piece at a time). */
static inline void ccurl_buffer_clear(ccurl_buffer *buffer) { buffer->length = 0; }
/* Copies up to `capacity` bytes into `out`; returns how many. */
static inline size_t ccurl_buffer_copy(const ccurl_buffer *buffer, uint8_t *out, size_t capacity) {
    size_t n = buffer->length < capacity ? buffer->length : capacity;
    if (n) memcpy(out, buffer->data, n);
    return n;
}
#endif
