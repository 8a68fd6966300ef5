/** What is at a path that is not a regular file, for messages ("is a FIFO (named pipe)"); undefined for a regular file or a link. */
export function describeSpecialFile(info: { isFile(): boolean; isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string | undefined {
  if (info.isFile()) return undefined;
  if (info.isDirectory()) return "a folder";
  if (info.isFIFO()) return "a FIFO (named pipe)";
  if (info.isSocket()) return "a socket";
  if (info.isCharacterDevice() || info.isBlockDevice()) return "a device";
  return undefined;
}
