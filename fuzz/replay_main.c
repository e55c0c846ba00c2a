/* Runs every file of a corpus directory (or the files named on the command
 * line) through LLVMFuzzerTestOneInput once: a regression test of the fuzz
 * targets that needs neither clang nor libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  uint8_t *data;
  long size;

  if (f == NULL) {
    perror(path);
    return -1;
  }
  if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return -1;
  }
  data = malloc((size_t)size + 1);
  if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size) {
    free(data);
    fclose(f);
    return -1;
  }
  fclose(f);
  LLVMFuzzerTestOneInput(data, (size_t)size);
  free(data);
  return 0;
}

static int run_path(const char *path, int *count) {
  struct stat st;
  DIR *dir;
  struct dirent *de;
  char child[4096];
  int rc = 0;

  if (stat(path, &st) != 0) {
    perror(path);
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    (*count)++;
    return run_file(path);
  }
  dir = opendir(path);
  if (dir == NULL)
    return -1;
  while ((de = readdir(dir)) != NULL && rc == 0) {
    if (de->d_name[0] == '.')
      continue;
    snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
    rc = run_path(child, count);
  }
  closedir(dir);
  return rc;
}

int main(int argc, char **argv) {
  int i, count = 0;

  if (argc < 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  for (i = 1; i < argc; i++)
    if (run_path(argv[i], &count) != 0)
      return 1;
  if (count == 0) {
    fprintf(stderr, "%s: empty corpus\n", argv[0]);
    return 1;
  }
  printf("%d passed, 0 failed\n", count);
  return 0;
}
