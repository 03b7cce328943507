/*
 * A project outside the libtriplestream tree (install_test.sh builds it
 * against an installed copy, with only pkg-config): one unary call to a
 * loopback server started here.  Exit 0 when the reply is right.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hello.tri.h"

/* The handler fills call->resp; the buffer is per thread and stays valid
 * until the library has sent the reply. */
static int
say_hello(Hello__Greeter__SayHello_Server *call, void *ud)
{
  static _Thread_local char msg[256];

  (void)ud;
  snprintf(msg, sizeof msg, "Hello %s", call->req->name);
  call->resp.message = msg;
  return TRI_OK;
}

static const Hello__Greeter_Handlers impl = {.say_hello = say_hello};

int
main(void)
{
  Hello__HelloRequest req = HELLO__HELLO_REQUEST__INIT;
  Hello__HelloReply *reply = NULL;
  tri_server *srv = NULL;
  tri_channel *ch = NULL;
  tri_call_opts *opts = tri_call_opts_new();
  char target[64];
  int rv = 1;

  if (opts == NULL || tri_call_opts_set_timeout_ms(opts, 10000) != TRI_OK ||
      tri_server_new(&srv, NULL) != TRI_OK ||
      hello__greeter__tri_register(srv, &impl, NULL) != TRI_OK ||
      tri_server_bind(srv, "127.0.0.1:0") != TRI_OK ||
      tri_server_start(srv) != TRI_OK) {
    fprintf(stderr, "server setup failed\n");
    goto out;
  }
  snprintf(target, sizeof target, "127.0.0.1:%d", tri_server_port(srv));
  if (tri_channel_new(&ch, target, NULL) != TRI_OK)
    goto out;
  req.name = (char *)"pkg-config";
  rv = hello__greeter__say_hello__call(ch, opts, &req, &reply, NULL);
  if (rv != TRI_OK) {
    fprintf(stderr, "SayHello: %s\n", tri_strerror(rv));
    rv = 1;
    goto out;
  }
  printf("%s (libtriplestream %s)\n", reply->message, tri_version());
  rv = strcmp(reply->message, "Hello pkg-config") != 0;
  hello__hello_reply__free_unpacked(reply, NULL);
out:
  tri_channel_free(ch);
  tri_server_free(srv);
  tri_call_opts_free(opts);
  return rv;
}
