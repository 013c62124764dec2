#ifndef VKLLM_CLI_H
#define VKLLM_CLI_H

typedef struct cli_command {
    const char *name;
    const char *help;
    int (*run)(int argc, char **argv); /* argv[0] is the command name; returns the exit code */
} cli_command;

int cli_devices(int argc, char **argv);
int cli_bench_ops(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_chat(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_perplexity(int argc, char **argv);
int cli_convert(int argc, char **argv);
int cli_synth(int argc, char **argv);
int cli_quantize(int argc, char **argv);
int cli_imatrix(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_medusa_train(int argc, char **argv);

#endif
