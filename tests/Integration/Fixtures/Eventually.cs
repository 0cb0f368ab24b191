namespace Backupd.Integration.Fixtures;

/// <summary>Polling for conditions a child process brings about; a time-out says what was awaited and what the process printed.</summary>
public static class Eventually
{
    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan limit, string what, IEnumerable<string> output)
    {
        var deadline = DateTime.UtcNow + limit;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"waited {limit.TotalSeconds}s for {what}; process output:\n{string.Join('\n', output.TakeLast(40))}");
            await Task.Delay(100);
        }
    }
}
